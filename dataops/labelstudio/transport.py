"""The HTTP side of talking to Label Studio: one SDK client per server, bounded retries that
never repeat a request that may have been applied, and plain dicts with aware UTC datetimes.

Why our own retries: the SDK's built-in ones also repeat non-idempotent POSTs (an import
repeated after a timeout would duplicate tasks), and its timestamps are sometimes strings and
sometimes datetimes. ``LabelStudioClient`` (the API calls) builds on this.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from dataops.labelstudio.errors import LabelStudioError, LabelStudioUnavailable

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Label Studio parses Datetime filter values with exactly this format (microseconds kept).
_LS_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_TIMESTAMP_FIELDS = ("created_at", "updated_at")


def parse_timestamp(value: str | datetime) -> datetime:
    """Turn either timestamp form the SDK returns into an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_ls_datetime(value: datetime) -> str:
    return parse_timestamp(value).strftime(_LS_DATETIME_FORMAT)


def normalise_timestamps(record: dict[str, Any]) -> dict[str, Any]:
    for field in _TIMESTAMP_FIELDS:
        if record.get(field) is not None:
            record[field] = parse_timestamp(record[field])
    return record


def as_dict(model: Any) -> dict[str, Any]:
    if isinstance(model, Mapping):
        return dict(model)
    return cast(dict[str, Any], model.model_dump(mode="json", by_alias=True))


def task_dict(model: Any) -> dict[str, Any]:
    task = normalise_timestamps(as_dict(model))
    task["annotations"] = [normalise_timestamps(as_dict(a)) for a in task.get("annotations") or []]
    return task


def server_message(body: Any) -> str:
    if isinstance(body, Mapping):
        parts = [str(body[key]) for key in ("detail", "validation_errors") if body.get(key)]
        text = "; ".join(parts) if parts else json.dumps(body, default=str)
    else:
        text = str(body)
    return text if len(text) <= 500 else text[:500] + "..."


class Transport:
    """One Label Studio server and one account (its token decides who the calls act as)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_wait: float = 30.0,
        backoff: float = 0.25,
        max_backoff: float = 5.0,
    ) -> None:
        import httpx
        from label_studio_sdk import LabelStudio
        from label_studio_sdk.core.api_error import ApiError

        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url = url.rstrip("/")
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)
        # The SDK's __init__ takes unannotated *args, **kwargs; its base class documents them.
        make_sdk = cast("Callable[..., LabelStudio]", LabelStudio)
        try:
            # Retries are ours (bounded, idempotency-aware); the SDK must not add its own.
            self._sdk: LabelStudio = make_sdk(
                base_url=self.url,
                api_key=token,
                timeout=timeout,
                max_retries=0,
                httpx_client=self._http,
            )
        except ApiError as exc:  # an expired personal access token is refused up front
            self._http.close()
            raise LabelStudioError(
                f"Label Studio token for {self.url} is not usable: {server_message(exc.body)}",
                ls_status=exc.status_code,
            ) from None

    @classmethod
    def connect(cls, url: str, token: str, **options: Any) -> Self:
        """Open a client and prove the server answers and accepts the token."""
        client = cls(url, token, **options)
        client._call("read the current user", client._sdk.users.whoami)
        return client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, action: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one SDK call with bounded exponential backoff.

        Non-idempotent calls are retried only when the request surely never reached the server
        (connection refused, connect timeout, 429); any other failure is reported at once.
        """
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except ApiError as exc:
                status = exc.status_code
                if status is None or status not in _RETRYABLE_STATUS:
                    raise LabelStudioError(
                        f"Label Studio at {self.url} refused to {action}: "
                        f"HTTP {status}: {server_message(exc.body)}",
                        ls_status=status,
                        body=exc.body,
                    ) from None
                if not idempotent and status != 429:
                    raise LabelStudioUnavailable(
                        f"Label Studio at {self.url} failed to {action} (HTTP {status}); "
                        "not retried because the request may have been applied",
                        ls_status=status,
                        body=exc.body,
                        attempts=attempt,
                    ) from None
                reason = f"HTTP {status}"
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:
                if not idempotent:
                    raise LabelStudioUnavailable(
                        f"Label Studio at {self.url} failed to {action} "
                        f"({type(exc).__name__}: {exc}); not retried because the request "
                        "may have been applied",
                        attempts=attempt,
                    ) from exc
                reason = f"{type(exc).__name__}: {exc}"

            elapsed = time.monotonic() - started
            delay = min(self._backoff * 2 ** (attempt - 1), self._max_backoff)
            delay *= random.uniform(0.5, 1.0)
            if attempt >= self._max_attempts or elapsed + delay > self._max_wait:
                raise LabelStudioUnavailable(
                    f"Label Studio at {self.url} is unavailable: could not {action} after "
                    f"{attempt} attempts in {elapsed:.1f}s (last error: {reason})",
                    attempts=attempt,
                )
            logger.warning(
                "Label Studio at %s: %s while trying to %s; retry %d/%d in %.2fs",
                self.url,
                reason,
                action,
                attempt,
                self._max_attempts - 1,
                delay,
            )
            time.sleep(delay)
