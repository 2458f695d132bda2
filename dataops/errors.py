"""Errors a user can act on; the CLI prints them as one line and the API as a 4xx JSON body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class DataopsError(Exception):
    """Base for errors caused by input or environment, never by a bug.

    Errors about a request field name it as a placeholder, never as a CLI flag or a JSON key,
    because the CLI and the API spell fields differently::

        raise BadRequest("{gate} must be between 0 and 1", fields=("gate",))

    ``str(exc)`` spells fields as the API does (``gate``); the CLI renders
    ``exc.render(flag_for)`` (``--gate``). The first field is also reported on its own
    (``exc.field``; ``error.field`` in the API's body) so clients can point at it.
    """

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str = "", *, fields: tuple[str, ...] = ()) -> None:
        self.template = message
        self.fields = fields
        super().__init__(self.render())

    @property
    def field(self) -> str | None:
        return self.fields[0] if self.fields else None

    def as_record(self) -> dict[str, Any]:
        """What a failed job keeps of this error (JSON): each face can spell its fields again."""
        return {
            "code": self.code,
            "status": self.status_code,
            "template": self.template,
            "fields": list(self.fields),
        }

    def render(self, spell: Callable[[str], str] | None = None) -> str:
        """The message with each field spelled by ``spell`` (default: the field's own name)."""
        if not self.fields:
            return self.template
        spell = spell or (lambda name: name)
        names = {name: spell(name) for name in self.fields}
        try:
            return self.template.format(**names)
        except (KeyError, IndexError, ValueError):
            # A user's value with braces reached the template unescaped: the message must
            # still be shown, so spell only the declared fields and leave the rest as is.
            text = self.template
            for name, shown in names.items():
                text = text.replace("{" + name + "}", shown)
            return text


class NotFound(DataopsError):
    status_code = 404
    code = "not_found"


class Conflict(DataopsError):
    status_code = 409
    code = "conflict"


class Forbidden(DataopsError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailable(DataopsError):
    """A backing service (database, broker, Label Studio) cannot be reached."""

    status_code = 503
    code = "service_unavailable"
