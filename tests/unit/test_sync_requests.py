"""The sync job's typed requests: defaults written once, bad values naming their field."""

from __future__ import annotations

import pytest

from dataops.errors import DataopsError
from dataops.labelstudio.schemas import (
    DEFAULT_PAGE_SIZE,
    PullRequest,
    PushRequest,
    sync_request,
)


def test_params_become_typed_requests_with_the_defaults() -> None:
    push = sync_request({"action": "push", "batch_id": 3})
    assert push == PushRequest(batch_id=3, page_size=DEFAULT_PAGE_SIZE)
    pull = sync_request({"action": "pull", "queue_id": 4})
    assert isinstance(pull, PullRequest)
    assert pull.model_dump(exclude_none=True) == {
        "action": "pull",
        "queue_id": 4,
        "full": False,
        "page_size": DEFAULT_PAGE_SIZE,
    }


def test_a_bad_page_size_names_the_field_each_face_spells() -> None:
    with pytest.raises(DataopsError) as caught:
        sync_request({"action": "push", "batch_id": 3, "page_size": 0})
    assert str(caught.value) == "page_size must be between 1 and 1000, got 0"
    assert caught.value.render(lambda name: "--" + name.replace("_", "-")).startswith(
        "--page-size must be"
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"action": "sweep"}, {"action": "pull"}, {"action": "pull", "batch_id": 1, "queue_id": 2}],
)
def test_a_request_without_one_target_is_refused(params: dict[str, object]) -> None:
    with pytest.raises(DataopsError):
        sync_request(params)
