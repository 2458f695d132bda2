"""Arbitrary label files never crash the importers: the only failure is a clean DataopsError."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.errors import DataopsError
from dataops.labeling import importers, importers_labelstudio, imports
from dataops.labeling.models import LabelVersion
from dataops.labeling.schemas import LabelImportOptions

CLASSES = ["T-Shirt", "Dress", "Not sure"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _either(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value or anything at all, so both deep and shallow paths are explored."""
    return strategy | json_values


tricky_text = st.sampled_from(
    ["", " ", "T-Shirt", "dress", "\x00", "\ud800", "a,b", '"', "\n", "Not sure", "x" * 200]
) | st.text(max_size=30)

results = st.lists(
    _either(
        st.fixed_dictionaries(
            {
                "type": _either(st.sampled_from(["choices", "rectanglelabels", "textarea"])),
                "from_name": _either(st.sampled_from(["label", "other"])),
                "value": _either(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "choices": _either(st.lists(tricky_text, max_size=3)),
                            "rectanglelabels": _either(st.lists(tricky_text, max_size=2)),
                            "x": _either(st.floats(-10, 110)),
                            "y": _either(st.floats(-10, 110)),
                            "width": _either(st.floats(-10, 110)),
                            "height": _either(st.floats(-10, 110)),
                            "rotation": _either(st.sampled_from([0, 0.0, 15])),
                        },
                    )
                ),
            }
        )
    ),
    max_size=3,
)


def annotations(user_ids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(
        _either(
            st.fixed_dictionaries(
                {"id": _either(st.integers(0, 10**6)), "result": _either(results)},
                optional={
                    "completed_by": _either(
                        user_ids
                        | st.fixed_dictionaries(
                            {"id": _either(user_ids), "email": _either(tricky_text)}
                        )
                    ),
                    "updated_at": _either(
                        st.sampled_from(
                            ["2026-03-01T09:00:00Z", "0001-01-01T00:00:00+14:00", "yesterday"]
                        )
                    ),
                    "was_cancelled": _either(st.booleans()),
                },
            )
        ),
        max_size=3,
    )


def tasks(images: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    data = st.fixed_dictionaries(
        {},
        optional={"image": _either(images | tricky_text), "dataops_sha256": _either(images)},
    )
    return st.lists(
        _either(
            st.fixed_dictionaries(
                {"data": _either(data), "annotations": _either(annotations(st.integers(-5, 2**40)))}
            )
        ),
        max_size=4,
    )


def _parses_or_fails_cleanly(fn: Any, text: str, **options: Any) -> None:
    try:
        parsed = fn(text, **options)
    except DataopsError:
        return
    assert parsed.annotations >= len(parsed.rows) + parsed.skipped
    for row in parsed.rows:
        assert row.image_sha256 or row.image_uri
        assert set(row.payload) in ({"class"}, {"boxes"})


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400), with_classes=st.booleans())
def test_csv_parser_on_any_text(text: str, with_classes: bool) -> None:
    _parses_or_fails_cleanly(importers.parse_csv, text, classes=CLASSES if with_classes else None)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(tricky_text, max_size=5), max_size=6),
    header=st.sampled_from(["image,annotator,label", "Image, Annotator ,LABEL,extra", "label"]),
)
def test_csv_parser_on_csv_shaped_text(rows: list[list[str]], header: str) -> None:
    text = header + "\n" + "\n".join(",".join(cells) for cells in rows)
    _parses_or_fails_cleanly(importers.parse_csv, text, classes=CLASSES)


@settings(max_examples=300, deadline=None)
@given(value=json_values, kind=st.sampled_from([None, "classification", "detection"]))
def test_labelstudio_parser_on_any_json(value: Any, kind: str | None) -> None:
    _parses_or_fails_cleanly(importers_labelstudio.parse_labelstudio, json.dumps(value), kind=kind)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_labelstudio_parser_on_any_text(text: str) -> None:
    _parses_or_fails_cleanly(importers_labelstudio.parse_labelstudio, text)


@settings(max_examples=400, deadline=None)
@given(
    document=tasks(st.sampled_from(["a" * 64, "/x/y.jpg"])),
    kind=st.sampled_from([None, "classification", "detection"]),
)
def test_labelstudio_parser_on_export_shaped_json(document: Any, kind: str | None) -> None:
    _parses_or_fails_cleanly(
        importers_labelstudio.parse_labelstudio,
        json.dumps(document),
        kind=kind,
        classes=CLASSES if kind == "classification" else None,
    )


def test_labelstudio_parser_on_deep_nesting() -> None:
    with pytest.raises(DataopsError):
        importers_labelstudio.parse_labelstudio("[" * 100_000 + "]" * 100_000)


@pytest.mark.slow
def test_import_into_the_catalog_fails_only_cleanly(catalog: str, image_dir: Path) -> None:
    """End to end on both databases: PostgreSQL refuses more text than SQLite does."""
    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as s:
        known = list(s.scalars(select(Image).where(Image.status == "ok").limit(3)))
    refs = st.sampled_from([i.sha256 for i in known] + [i.uri for i in known])

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        document=tasks(refs),
        csv_rows=st.lists(st.tuples(refs | tricky_text, tricky_text, tricky_text), max_size=4),
        as_csv=st.booleans(),
    )
    def check(document: Any, csv_rows: list[tuple[str, str, str]], as_csv: bool) -> None:
        if as_csv:
            buffer = io.StringIO()
            csv.writer(buffer).writerows([("image", "annotator", "label"), *csv_rows])
            data, name = buffer.getvalue().encode("utf-8", "surrogatepass"), "fuzz.csv"
        else:
            data, name = json.dumps(document).encode(), "fuzz.json"
        with session_scope() as s:
            before = s.scalar(select(func.count()).select_from(LabelVersion))
        try:
            with session_scope() as s:
                report = imports.import_labels(s, data, LabelImportOptions(), filename=name)
        except DataopsError:
            report = None
        with session_scope() as s:
            after = s.scalar(select(func.count()).select_from(LabelVersion))
        if report is None or report.errors:
            assert after == before  # all or nothing
        else:
            assert after == before + report.created

    check()
