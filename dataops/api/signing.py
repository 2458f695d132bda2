"""Signed, expiring image URLs for Label Studio.

Label Studio's browser fetches task images itself and cannot send our bearer token, so a
task's image URL carries its own permission: ``/v1/media/{image}?queue=Q&exp=T&sig=S`` where
``S = HMAC-SHA256(key, "media:v1:{image}:{queue}:{exp}")``. The signature binds the image,
the queue and the expiry together, so a URL cannot be stretched in time or reused for
another image or queue. The key is ``get_settings().signing_key()`` (``DATAOPS_SECRET_KEY``).

Pushed tasks use ``/v1/media/t/{task_key}?exp=T&sig=S`` instead, with
``S = HMAC-SHA256(key, "media:v2:{task_key}:{exp}")``: the task key is a random token, so the
URL a vendor sees names no catalog image, queue or batch, and it looks the same for gold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from urllib.parse import urlencode

from dataops.config import get_settings
from dataops.errors import Forbidden


class InvalidSignature(Forbidden):
    code = "invalid_signature"


_SIG_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def sign(image_id: int, queue_id: int, exp: int) -> str:
    message = f"media:v1:{image_id}:{queue_id}:{exp}".encode()
    digest = hmac.new(get_settings().signing_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_image_url(
    image_id: int, queue_id: int, ttl: int | None = None, *, now: float | None = None
) -> str:
    """An absolute URL (``get_settings().public_url``) valid for `ttl` seconds."""
    settings = get_settings()
    exp = int(now if now is not None else time.time()) + (ttl or settings.signed_url_ttl)
    query = urlencode({"queue": queue_id, "exp": exp, "sig": sign(image_id, queue_id, exp)})
    return f"{settings.public_url.rstrip('/')}/v1/media/{image_id}?{query}"


TASK_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def sign_task(task_key: str, exp: int) -> str:
    message = f"media:v2:{task_key}:{exp}".encode()
    digest = hmac.new(get_settings().signing_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_task_url(task_key: str, ttl: int | None = None, *, now: float | None = None) -> str:
    """The image of one pushed task, by its opaque key, valid for `ttl` seconds."""
    settings = get_settings()
    exp = int(now if now is not None else time.time()) + (ttl or settings.signed_url_ttl)
    query = urlencode({"exp": exp, "sig": sign_task(task_key, exp)})
    return f"{settings.public_url.rstrip('/')}/v1/media/t/{task_key}?{query}"


def verify_task(
    task_key: str, exp: int | None, sig: str | None, *, now: float | None = None
) -> int:
    """The signed expiry; 403 unless the signature is ours for exactly this key and expiry."""
    if exp is None or not sig:
        raise InvalidSignature("this URL needs exp and sig parameters (a signed URL)")
    expected = sign_task(task_key, exp).encode()
    presented = sig.encode() if _SIG_RE.match(sig) else b""
    if not hmac.compare_digest(expected, presented):
        raise InvalidSignature("invalid signature")
    if exp <= (now if now is not None else time.time()):
        raise InvalidSignature("this signed URL has expired")
    return exp


def verify(
    image_id: int,
    queue_id: int | None,
    exp: int | None,
    sig: str | None,
    *,
    now: float | None = None,
) -> tuple[int, int]:
    """The signed (queue id, expiry); 403 unless the signature is ours for exactly these."""
    if queue_id is None or exp is None or not sig:
        raise InvalidSignature("this URL needs queue, exp and sig parameters (a signed URL)")
    expected = sign(image_id, queue_id, exp).encode()
    presented = sig.encode() if _SIG_RE.match(sig) else b""
    if not hmac.compare_digest(expected, presented):
        raise InvalidSignature("invalid signature")
    if exp <= (now if now is not None else time.time()):
        raise InvalidSignature("this signed URL has expired")
    return queue_id, exp


class RedactSignatures(logging.Filter):
    """Keep signatures out of access logs: a logged URL would be a usable URL until it expires."""

    _pattern = re.compile(r"(sig=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._pattern.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True
