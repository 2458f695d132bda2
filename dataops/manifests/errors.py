"""Manifest errors: each message says what was wrong and what to do about it."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, NotFound


def escaped(text: object) -> str:
    """Text quoted inside an error template, where braces mark the fields each face spells."""
    return str(text).replace("{", "{{").replace("}", "}}")


class ManifestError(DataopsError):
    """Rows that cannot form a manifest, or a body file that cannot be read."""

    code = "bad_manifest"


class ManifestNotFound(NotFound):
    code = "manifest_not_found"


class ManifestExists(Conflict):
    """Names are unique and manifests immutable: a new version needs a new name."""

    code = "manifest_exists"


class EmptyManifest(DataopsError):
    """Nothing matched: a manifest with no rows would hide a wrong filter or task."""

    code = "empty_manifest"


class ManifestTampered(DataopsError):
    """A stored body no longer hashes to the manifest's id, so its rows cannot be trusted."""

    status_code = 409
    code = "manifest_tampered"
