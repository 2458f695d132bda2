"""Label Studio's API as dataops uses it: projects, tasks, annotations, webhooks, and the
annotation shape the label store records. The only place dataops calls Label Studio; the
retries and the plumbing are in ``transport``.

Annotator identity: ``completed_by`` is stored as the caller sends it, so any token can claim
any user. ``updated_by`` is set by the server to the authenticated account that created or last
changed the annotation, which is the author of that annotation version; ``normalise_annotation``
reports it as ``ls_user_id`` and keeps ``completed_by`` alongside for reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from dataops.labelstudio.annotations import (
    NormalisedAnnotation,
    normalise_annotation,
    prediction_result,
)
from dataops.labelstudio.errors import LabelStudioError
from dataops.labelstudio.transport import (
    Transport,
    as_dict,
    format_ls_datetime,
    normalise_timestamps,
    parse_timestamp,
    task_dict,
)

if TYPE_CHECKING:
    from label_studio_sdk.types.import_api_request import ImportApiRequest

__all__ = [
    "LabelStudioClient",
    "NormalisedAnnotation",
    "normalise_annotation",
    "parse_timestamp",
    "prediction_result",
]

# Filters travel in the query string; stay well under the 8 KiB request line of common proxies.
_MAX_FILTER_CHARS = 6000
# Each filtered lookup scans the project; beyond this many, one listing of it is cheaper.
_MAX_FILTER_REQUESTS = 4
_SCAN_PAGE = 1000
# Task ids per Data Manager selection (listing rides in the URL: ~8 characters per id).
_ID_CHUNK = 500
_UNLABELLED: Any = {
    "conjunction": "and",
    "items": [
        {
            "filter": "filter:tasks:total_annotations",
            "operator": "equal",
            "type": "Number",
            "value": 0,
        }
    ],
}


def _chunk_keys(keys: Sequence[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for key in keys:
        cost = len(quote(json.dumps(key))) + 3
        if chunk and size + cost > _MAX_FILTER_CHARS:
            yield chunk
            chunk, size = [], 0
        chunk.append(key)
        size += cost
    if chunk:
        yield chunk


def _in_list_query(key_field: str, keys: list[str]) -> dict[str, Any]:
    return {
        "filters": {
            "conjunction": "and",
            "items": [
                {
                    "filter": f"filter:tasks:data.{key_field}",
                    "operator": "in_list",
                    "type": "String",
                    "value": keys,
                }
            ],
        }
    }


class LabelStudioClient(Transport):
    """The calls dataops makes; each returns plain dicts with aware UTC datetimes."""

    def whoami(self) -> dict[str, Any]:
        """The account behind the token (id, email): who our writes will be attributed to."""
        return as_dict(self._call("read the current user", self._sdk.users.whoami))

    def list_users(self) -> list[dict[str, Any]]:
        """Every account on the server, to map LS user ids to annotators."""
        users = self._call("list users", self._sdk.users.list)
        return [as_dict(user) for user in users]

    def create_project(
        self,
        title: str,
        label_config: str,
        maximum_annotations: int = 1,
        *,
        description: str = "",
        overlap_cohort_percentage: int = 100,
    ) -> int:
        """Create a project (one per vendor queue) and return its id."""
        project = self._call(
            f"create project {title!r}",
            lambda: self._sdk.projects.create(
                title=title,
                label_config=label_config,
                maximum_annotations=maximum_annotations,
                description=description,
                overlap_cohort_percentage=overlap_cohort_percentage,
            ),
            idempotent=False,
        )
        return _project_id(project)

    def get_project(self, project_id: int) -> dict[str, Any]:
        """The project's settings and counters."""
        project = self._call(
            f"read project {project_id}", lambda: self._sdk.projects.get(id=project_id)
        )
        return as_dict(project)

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create tasks in one request and return their ids in input order.

        Label Studio ignores caller-supplied ids and never deduplicates, so callers put their
        own key in ``data`` and check ``find_tasks_by_key`` before importing again.
        """
        if not tasks:
            return []
        payload = cast("Sequence[ImportApiRequest]", [dict(task) for task in tasks])
        response = self._call(
            f"import {len(tasks)} tasks into project {project_id}",
            lambda: self._sdk.projects.import_tasks(
                id=project_id, request=payload, return_task_ids=True
            ),
            idempotent=False,
        )
        # ``task_ids`` is an extra field of the response model, present when asked for.
        task_ids = [int(task_id) for task_id in getattr(response, "task_ids", None) or []]
        if len(task_ids) != len(tasks):
            raise LabelStudioError(
                f"Label Studio at {self.url} created {len(task_ids)} tasks for "
                f"{len(tasks)} sent to project {project_id}"
            )
        return task_ids

    def set_task_overlap(self, task_id: int, overlap: int) -> None:
        """How many distinct annotators Label Studio asks for on one task.

        An imported task always gets its project's ``maximum_annotations``; this PATCH sets one
        task's own count, and Label Studio's queue and ``is_labeled`` follow it.
        """
        if overlap < 1:
            raise ValueError("a task needs at least one annotator")
        self._call(
            f"set the overlap of task {task_id} to {overlap}",
            lambda: self._sdk.tasks.update(id=str(task_id), overlap=overlap),
        )

    def task_page(
        self, project_id: int, page: int, page_size: int, query: dict[str, Any], fields: str
    ) -> list[dict[str, Any]]:
        """One page of a project's task listing: the single request every listing below is
        built from (so their paging can be tested against a fake of this one call)."""
        try:
            pager: Any = self._call(
                f"list tasks of project {project_id} (page {page})",
                lambda: self._sdk.tasks.list(
                    project=project_id,
                    page=page,
                    page_size=page_size,
                    fields=fields,
                    query=json.dumps(query),
                ),
            )
        except LabelStudioError as exc:
            # A page past the end is a 404, not an empty page.
            if exc.ls_status == 404 and page > 1:
                return []
            raise
        return [task_dict(task) for task in pager.items or []]

    def find_tasks_by_key(
        self, project_id: int, key_field: str, keys: Iterable[str]
    ) -> dict[str, int]:
        """Map our item keys (stored in ``data.<key_field>``) to existing task ids.

        Few keys: one ``in_list`` filter per few hundred keys (the filter rides in the URL).
        Every such request scans the whole project, so past a handful of them one listing of
        the project is cheaper. On 1,000 tasks: 10 keys 0.19 s, 100 keys 0.60 s by filter (one
        ``equal`` filter per key: 13.7 s for 100); 1,000 keys 6.8 s by filter, 3.6 s by
        listing. If a key was imported twice, the oldest task wins.
        """
        wanted = sorted(set(keys))
        chunks = list(_chunk_keys(wanted))
        if len(chunks) > _MAX_FILTER_REQUESTS:
            pages: Iterator[list[dict[str, Any]]] = self._task_pages(project_id, {}, _SCAN_PAGE)
        else:
            pages = (
                page
                for chunk in chunks
                for page in self._task_pages(
                    project_id, _in_list_query(key_field, chunk), len(chunk)
                )
            )
        wanted_set = set(wanted)
        found: dict[str, int] = {}
        for tasks in pages:
            for task in tasks:
                key = str(task["data"].get(key_field))
                if key in wanted_set:
                    found[key] = min(found.get(key, int(task["id"])), int(task["id"]))
        return found

    def _task_pages(
        self, project_id: int, query: dict[str, Any], page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        page = 1
        while True:
            tasks = self.task_page(project_id, page, page_size, query, "task_only")
            yield tasks
            if len(tasks) < page_size:
                return
            page += 1

    def list_tasks(
        self, project_id: int, updated_since: datetime | None = None, *, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Yield tasks (with annotations) changed at or after ``updated_since``, oldest first.

        Keyset pagination on ``updated_at``: each page asks again for ``updated_at >= cursor``,
        so a task updated while we page moves behind the cursor instead of shifting an unseen
        task onto a page already read. Tasks at the cursor instant are deduplicated on
        (id, updated_at); a full page of identical timestamps falls back to page numbers.
        Callers keep the largest ``updated_at`` they stored as the next ``updated_since``.
        """
        cursor = parse_timestamp(updated_since) if updated_since is not None else None
        seen: set[tuple[int, datetime]] = set()
        page = 1
        while True:
            query: dict[str, Any] = {"ordering": ["tasks:updated_at"]}
            if cursor is not None:
                query["filters"] = {
                    "conjunction": "and",
                    "items": [
                        {
                            "filter": "filter:tasks:updated_at",
                            "operator": "greater_or_equal",
                            "type": "Datetime",
                            "value": format_ls_datetime(cursor),
                        }
                    ],
                }
            tasks = self.task_page(project_id, page, page_size, query, "all")
            for task in tasks:
                marker = (int(task["id"]), task["updated_at"])
                if marker not in seen:
                    seen.add(marker)
                    yield task
            if len(tasks) < page_size:
                return
            last: datetime = tasks[-1]["updated_at"]
            if last == cursor:
                page += 1
            else:
                cursor, page = last, 1
                seen = {marker for marker in seen if marker[1] == last}

    def delete_unlabelled_tasks(
        self, project_id: int, task_ids: Iterable[int]
    ) -> tuple[list[int], list[int]]:
        """Delete those of ``task_ids`` that hold no annotation; return (deleted, kept) ids.

        One Data Manager ``delete_tasks`` action per chunk, restricted on the server to tasks
        whose ``total_annotations`` is 0 (a skip is no annotation), so a task labeled while
        this runs is kept. What is left is then read back: the answer is what Label Studio
        holds, not what was asked. Ids not in the project count as deleted. Safe to repeat.
        """
        wanted = sorted({int(task_id) for task_id in task_ids})

        def delete(chunk: list[int]) -> Callable[[], None]:
            return lambda: self._sdk.actions.create(
                id="delete_tasks",
                project=project_id,
                selected_items=cast(Any, {"all": False, "included": chunk}),
                filters=_UNLABELLED,
            )

        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            self._call(
                f"delete {len(chunk)} unlabelled tasks of project {project_id}", delete(chunk)
            )
        left: set[int] = set()
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            query = {"selectedItems": {"all": False, "included": chunk}}
            for tasks in self._task_pages(project_id, query, len(chunk)):
                left.update(int(task["id"]) for task in tasks)
        return [i for i in wanted if i not in left], sorted(left & set(wanted))

    def create_annotation(
        self,
        task_id: int,
        result: Sequence[Mapping[str, Any]],
        *,
        lead_time: float | None = None,
        was_cancelled: bool = False,
    ) -> dict[str, Any]:
        """Annotate a task as the token's account (tests label "as" an annotator this way)."""
        annotation = self._call(
            f"annotate task {task_id}",
            lambda: self._sdk.annotations.create(
                id=task_id,
                result=[dict(item) for item in result],
                lead_time=lead_time,
                was_cancelled=was_cancelled,
            ),
            idempotent=False,
        )
        return normalise_timestamps(as_dict(annotation))

    def update_annotation(
        self, annotation_id: int, result: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Replace an annotation's result; Label Studio bumps its and its task's updated_at."""
        annotation = self._call(
            f"update annotation {annotation_id}",
            lambda: self._sdk.annotations.update(
                id=annotation_id, result=[dict(item) for item in result]
            ),
        )
        return normalise_timestamps(as_dict(annotation))

    def delete_annotation(self, annotation_id: int) -> None:
        """Delete an annotation; polling cannot see this, only the webhook can."""
        self._call(
            f"delete annotation {annotation_id}",
            lambda: self._sdk.annotations.delete(id=annotation_id),
        )

    def create_webhook(self, project_id: int, url: str, secret_header: tuple[str, str]) -> int:
        """Register a webhook for every action; Label Studio signs nothing, so we send a secret."""
        name, value = secret_header
        webhook = self._call(
            f"create a webhook for project {project_id}",
            lambda: self._sdk.webhooks.create(
                url=url,
                project=project_id,
                send_payload=True,
                send_for_all_actions=True,
                headers={name: value},
            ),
            idempotent=False,
        )
        if webhook.id is None:
            raise LabelStudioError(f"Label Studio at {self.url} returned a webhook without an id")
        return int(webhook.id)


def _project_id(project: Any) -> int:
    project_id = getattr(project, "id", None)
    if project_id is None:
        raise LabelStudioError("Label Studio returned a project without an id")
    return int(project_id)
