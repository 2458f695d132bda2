"""Signed image URLs: only the exact (image, queue, expiry) signed, only while it lasts, only
for images in that queue's batches, and never with the photo's metadata."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from dataops.api import signing
from tests.support.api import (
    SECRET_OWNER,
    SECRET_SERIAL,
    bearer,
    ingest_files,
    make_queue,
    write_photo,
)


@pytest.fixture
def queued(api: TestClient, tmp_path: Path) -> dict[str, int]:
    photos = [write_photo(tmp_path / "photos" / f"p{i}.jpg", seed=i) for i in range(3)]
    in_queue, elsewhere, unqueued = ingest_files(photos)
    return {
        "image": in_queue,
        "queue": make_queue("acme", [in_queue]),
        "other_image": elsewhere,
        "other_queue": make_queue("globex", [elsewhere]),
        "unqueued": unqueued,
    }


def _local(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def _assert_refused(response: Any) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "invalid_signature"


def test_valid_url_serves_upright_image_without_metadata(
    api: TestClient, queued: dict[str, int]
) -> None:
    path, params = _local(signing.signed_image_url(queued["image"], queued["queue"]))
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["referrer-policy"] == "no-referrer"
    body = response.content
    for secret in (SECRET_SERIAL, SECRET_OWNER, "TestMake", "xmpmeta"):
        assert secret.encode() not in body
    with PILImage.open(io.BytesIO(body)) as img:
        assert not img.getexif()
        assert not {"exif", "xmp", "comment", "icc_profile"} & set(img.info)
        # Orientation 6 (rotate 90° clockwise): the 60×40 photo is served 40×60, red on top.
        assert img.size == (40, 60)
        top, bottom = img.getpixel((20, 5)), img.getpixel((20, 55))
        assert top[0] > 150
        assert top[2] < 100
        assert bottom[2] > 150
        assert bottom[0] < 100


def test_expired_url_is_refused(api: TestClient, queued: dict[str, int]) -> None:
    url = signing.signed_image_url(queued["image"], queued["queue"], ttl=60, now=time.time() - 3600)
    path, params = _local(url)
    _assert_refused(api.get(path, params=params))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda p: {**p, "sig": ("A" if p["sig"][0] != "A" else "B") + p["sig"][1:]}, id="sig"
        ),
        pytest.param(lambda p: {**p, "exp": str(int(p["exp"]) + 86400)}, id="exp"),
        pytest.param(lambda p: {**p, "sig": p["sig"][:-1]}, id="truncated"),
        pytest.param(lambda p: {**p, "sig": p["sig"] + "é"}, id="non-ascii"),
        pytest.param(lambda p: {k: v for k, v in p.items() if k != "sig"}, id="no-sig"),
        pytest.param(lambda p: {k: v for k, v in p.items() if k != "exp"}, id="no-exp"),
    ],
)
def test_tampered_url_is_refused(api: TestClient, queued: dict[str, int], tamper: Any) -> None:
    path, params = _local(signing.signed_image_url(queued["image"], queued["queue"]))
    _assert_refused(api.get(path, params=tamper(params)))


def test_signature_is_bound_to_image_and_queue(api: TestClient, queued: dict[str, int]) -> None:
    _, params = _local(signing.signed_image_url(queued["image"], queued["queue"]))
    _assert_refused(api.get(f"/v1/media/{queued['other_image']}", params=params))
    _assert_refused(
        api.get(f"/v1/media/{queued['image']}", params={**params, "queue": queued["other_queue"]})
    )


@pytest.mark.parametrize("image_key", ["other_image", "unqueued"])
def test_valid_signature_for_image_outside_the_queue_is_refused(
    api: TestClient, queued: dict[str, int], image_key: str
) -> None:
    """Defense in depth: even a correctly signed URL only serves the queue's own images."""
    path, params = _local(signing.signed_image_url(queued[image_key], queued["queue"]))
    _assert_refused(api.get(path, params=params))


def test_bearer_token_is_no_substitute_for_a_signature(
    api: TestClient, queued: dict[str, int], make_user: Any
) -> None:
    vendor = make_user("vendor", vendor="acme")
    admin = make_user("admin")
    for token in (vendor, admin):
        _assert_refused(api.get(f"/v1/media/{queued['image']}", headers=bearer(token)))
        _assert_refused(
            api.get(
                f"/v1/media/{queued['image']}",
                params={"queue": queued["queue"]},
                headers=bearer(token),
            )
        )


def test_new_signing_key_invalidates_old_urls(
    api: TestClient, queued: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops.config import reset_settings

    path, params = _local(signing.signed_image_url(queued["image"], queued["queue"]))
    assert api.get(path, params=params).status_code == 200
    monkeypatch.setenv("DATAOPS_SECRET_KEY", "a-completely-different-key")
    reset_settings()
    _assert_refused(api.get(path, params=params))


def test_url_uses_public_url_and_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataops.config import reset_settings

    monkeypatch.setenv("DATAOPS_PUBLIC_URL", "https://dataops.example.org/")
    monkeypatch.setenv("DATAOPS_SIGNED_URL_TTL", "600")
    reset_settings()
    url = signing.signed_image_url(7, 3, now=1_000_000)
    assert url.startswith("https://dataops.example.org/v1/media/7?")
    _, params = _local(url)
    assert params["queue"] == "3"
    assert params["exp"] == str(1_000_600)
    assert signing.verify(7, 3, 1_000_600, params["sig"], now=1_000_000) == (3, 1_000_600)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(7, 3, 1_000_600, params["sig"], now=1_000_600)


def test_verification_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature is compared with hmac.compare_digest, never with ==."""
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    sig = signing.sign(1, 2, 2_000_000_000)
    signing.verify(1, 2, 2_000_000_000, sig, now=0)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(1, 2, 2_000_000_000, "x" * 43, now=0)
    assert len(calls) == 2


def test_signatures_stay_out_of_access_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/media/1?queue=2&exp=3&sig=SECRETSIG", "1.1", 200),
        None,
    )
    signing.RedactSignatures().filter(record)
    line = record.getMessage()
    assert "SECRETSIG" not in line
    assert "/v1/media/1?queue=2&exp=3&sig=***" in line
