"""What an audit does with a batch's items: the acceptance rule of relabel rounds and the
outcome of a rejected batch. Each queue carries its own policy; these are the defaults.

- ``on_reject``: what a rejected batch does with its answered items.
  ``relabel_failed`` (default): items that failed the audit (ties, gold misses, majorities that
  were not unanimous, relabel items short of the quorum) go to a relabel batch; every other
  answered item is *released*. ``relabel_all``: every answered item goes to the relabel batch.
  ``release``: every answered item is released and no relabel batch is made.
- ``relabel_answers``: answers asked for each item of a relabel batch (default 3, so a
  two-way tie cannot happen again).
- ``relabel_agree``: how many matching answers make a relabel item pass ("2 of 3"); a strict
  majority of ``relabel_answers``, so two different answers can never both reach it.
- ``relabel_rounds``: relabel batches at most in one chain (default 2). An item still
  unresolved after the last round is released and listed in the report for adjudication.
- ``accept_rule``: how an item's accepted label is picked where there is no gold or
  adjudicated answer. ``majority`` (default): the largest group of matching answers (a tie is
  disputed), a single answer as it is. ``consensus``: CROWDLAB's consensus
  (``dataops.quality.consensus``), which weighs each answer by its annotator's estimated
  skill and the model's probabilities, so it also settles ties; an item whose answers all
  miss the consensus is disputed. It needs a model that scored the batch's images and
  classification answers, and falls back to the majority otherwise (the audit records which
  rule was applied). Relabel batches keep their "k of n" rule.

*Released* answers are kept as they were given (status ``released``): they are no ground
truth (manifests and gold pools take accepted or adjudicated labels only), they do not make
their image "labeled", so the image is selectable again for the task once no batch claims it,
and no later audit judges them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dataops.audits.errors import AuditInputError, literal

RELABEL_FAILED, RELABEL_ALL, RELEASE = "relabel_failed", "relabel_all", "release"
ON_REJECT = (RELABEL_FAILED, RELABEL_ALL, RELEASE)
DEFAULT_ON_REJECT = RELABEL_FAILED
DEFAULT_RELABEL_ANSWERS = 3
DEFAULT_RELABEL_AGREE = 2
DEFAULT_RELABEL_ROUNDS = 2
MAJORITY, CONSENSUS = "majority", "consensus"
ACCEPT_RULES = (MAJORITY, CONSENSUS)
DEFAULT_ACCEPT_RULE = MAJORITY
MAX_RELABEL_ANSWERS = 9
MAX_RELABEL_ROUNDS = 10


@dataclass(frozen=True)
class Policy:
    on_reject: str = DEFAULT_ON_REJECT
    relabel_answers: int = DEFAULT_RELABEL_ANSWERS
    relabel_agree: int = DEFAULT_RELABEL_AGREE
    relabel_rounds: int = DEFAULT_RELABEL_ROUNDS
    accept_rule: str = DEFAULT_ACCEPT_RULE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rule(self) -> str:
        """The relabel acceptance rule in words, e.g. ``2 of 3 matching answers``."""
        return f"{self.relabel_agree} of {self.relabel_answers} matching answers"

    def describe(self) -> str:
        return (
            f"on reject {self.on_reject}, relabel items pass with {self.rule()}, "
            f"at most {self.relabel_rounds} relabel rounds, items accepted by "
            f"{self.accept_rule}"
        )


def check(
    *,
    on_reject: str = DEFAULT_ON_REJECT,
    relabel_answers: int = DEFAULT_RELABEL_ANSWERS,
    relabel_agree: int = DEFAULT_RELABEL_AGREE,
    relabel_rounds: int = DEFAULT_RELABEL_ROUNDS,
    accept_rule: str = DEFAULT_ACCEPT_RULE,
) -> Policy:
    """A valid policy, or an error naming the field and the values it accepts."""
    if on_reject not in ON_REJECT:
        raise AuditInputError(
            f"{{on_reject}} must be one of {', '.join(ON_REJECT)}, got {literal(repr(on_reject))}",
            fields=("on_reject",),
        )
    if not 2 <= relabel_answers <= MAX_RELABEL_ANSWERS:
        raise AuditInputError(
            f"{{relabel_answers}} must be between 2 and {MAX_RELABEL_ANSWERS}, "
            f"got {relabel_answers}",
            fields=("relabel_answers",),
        )
    if not relabel_answers // 2 < relabel_agree <= relabel_answers:
        raise AuditInputError(
            f"{{relabel_agree}} must be a majority of {{relabel_answers}} "
            f"({relabel_answers // 2 + 1} to {relabel_answers}), got {relabel_agree}",
            fields=("relabel_agree", "relabel_answers"),
        )
    if not 0 <= relabel_rounds <= MAX_RELABEL_ROUNDS:
        raise AuditInputError(
            f"{{relabel_rounds}} must be between 0 and {MAX_RELABEL_ROUNDS}, got {relabel_rounds}",
            fields=("relabel_rounds",),
        )
    if accept_rule not in ACCEPT_RULES:
        raise AuditInputError(
            f"{{accept_rule}} must be one of {', '.join(ACCEPT_RULES)}, "
            f"got {literal(repr(accept_rule))}",
            fields=("accept_rule",),
        )
    return Policy(on_reject, relabel_answers, relabel_agree, relabel_rounds, accept_rule)


def of_queue(queue: Any | None) -> Policy:
    """The queue's policy (the defaults for a batch without a queue)."""
    if queue is None:
        return Policy()
    return Policy(
        queue.on_reject,
        queue.relabel_answers,
        queue.relabel_agree,
        queue.relabel_rounds,
        getattr(queue, "accept_rule", None) or DEFAULT_ACCEPT_RULE,
    )
