"""Label-quality errors: each says what was wrong and what to do about it."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, NotFound


class NotOutOfSample(DataopsError):
    """Probabilities the model may have been fitted on: confident learning would trust them."""

    code = "not_out_of_sample"


class InvalidProbabilities(DataopsError):
    code = "invalid_probabilities"


class NoEmbeddings(Conflict):
    code = "no_embeddings"


class TooFewLabels(Conflict):
    code = "too_few_labels"


class RunNotFound(NotFound):
    code = "label_quality_run_not_found"
