"""GPS, serial numbers and owner names from real phone/camera files never reach the catalog or logs."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from sqlalchemy import text

from dataops.catalog.ingest import ingest
from dataops.db import get_engine, session_scope

SENSITIVE_TAGS = {
    "BodySerialNumber",
    "SerialNumber",
    "CameraOwnerName",
    "Artist",
    "OwnerName",
    "LensSerialNumber",
}


def _secrets_in(folder: Path) -> set[str]:
    """Strings in the files' EXIF that must never be stored: GPS values, serials, owner names."""
    found: set[str] = set()
    for path in folder.iterdir():
        try:
            with Image.open(path) as img:
                exif = img.getexif()
                gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
                for value in gps.values():
                    if isinstance(value, tuple) and len(value) == 3:
                        found.add(
                            f"{float(value[0]):.0f}"
                        )  # degrees appear only as part of a number
                sub = exif.get_ifd(ExifTags.IFD.Exif)
                for tag, value in list(exif.items()) + list(sub.items()):
                    name = ExifTags.TAGS.get(tag, "")
                    if (
                        name in SENSITIVE_TAGS
                        and isinstance(value, str)
                        and len(value.strip("\x00 ")) >= 4
                    ):
                        found.add(value.strip("\x00 "))
        except OSError:  # a corrupt sample file: nothing to leak
            continue
    return found


def test_no_gps_or_owner_data_in_db_or_logs(
    catalog: str, corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = corpus / "metadata-extractor-images"
    secrets = {s for s in _secrets_in(folder) if len(s) >= 6}
    assert secrets, "expected serial numbers or owner names in the sample files"
    caplog.set_level(logging.DEBUG)
    result = ingest([str(folder)], transaction=session_scope)
    assert result.new > 100
    with get_engine().connect() as conn:
        rows = conn.execute(text("SELECT * FROM images")).all()
        events = conn.execute(text("SELECT * FROM audit_events")).all()
    dump = "\n".join(repr(tuple(r)) for r in rows + events)
    assert "GPS" not in dump
    assert not re.search(r"GPSLatitude|GPSLongitude|gps", dump, re.IGNORECASE)
    leaked = {s for s in secrets if s in dump or s in caplog.text}
    assert not leaked, f"sensitive EXIF values stored: {sorted(leaked)[:5]}"
    with session_scope() as s:
        cameras = {
            r[0] for r in s.execute(text("SELECT camera FROM images WHERE camera IS NOT NULL"))
        }
    assert cameras, "make/model from the allowlist should be kept"


def test_gps_files_exist_in_corpus(corpus: Path) -> None:
    """Guards the test above: the corpus really has GPS-tagged files to leak."""
    count = 0
    for path in (corpus / "metadata-extractor-images").iterdir():
        try:
            with Image.open(path) as img:
                if img.getexif().get_ifd(ExifTags.IFD.GPSInfo):
                    count += 1
        except OSError:  # a corrupt sample file: nothing to leak
            continue
    assert count >= 5
