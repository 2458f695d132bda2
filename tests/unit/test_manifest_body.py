import copy
import hashlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataops.manifests.body import (
    canonical_jsonl,
    manifest_id,
    read_body,
    read_parquet_body,
    verify_body,
    verify_parquet,
    write_body,
)
from dataops.manifests.errors import ManifestError
from dataops.manifests.splits import SplitSpecError

SPEC = "train=0.8,val=0.1,test=0.1"


def make_row(i, **changes):
    sha = hashlib.sha256(f"image-{i}".encode()).hexdigest()
    row = {
        "sha256": sha,
        "blob_key": f"sha256/{sha[:2]}/{sha}",
        "uri": f"file:///data/cam{i % 3}/img_{i}.jpg",
        "split": ("train", "val", "test")[i % 3],
        "label_version_id": 1000 + i,
        "label": {"class": ("helmet", "person", "vest")[i % 3], "score": 0.5 + i / 100},
        "guideline_version": "helmets-v2" if i % 2 else None,
        "dup_group_id": i // 2 if i % 4 else None,
        "width": 640,
        "height": 480,
    }
    row.update(changes)
    return row


@pytest.fixture
def rows():
    return [make_row(i) for i in range(12)]


def sorted_rows(rows):
    return sorted(rows, key=lambda r: r["sha256"])


def test_canonical_form(rows):
    body = canonical_jsonl(rows, 7, SPEC)
    lines = body.split(b"\n")
    assert lines[-1] == b""  # ends with a newline
    header = json.loads(lines[0])
    assert header == {
        "format": "dataops.manifest",
        "version": 1,
        "seed": 7,
        "splits": SPEC,
        "rows": 12,
    }
    parsed = [json.loads(line) for line in lines[1:-1]]
    assert parsed == sorted_rows(rows)
    for line in lines:
        text = line.decode()
        if text:
            assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_non_ascii_is_raw_utf8():
    body = canonical_jsonl([make_row(0, label={"class": "casque jaune é"})], 0, SPEC)
    assert "casque jaune é".encode() in body


def test_row_order_does_not_change_the_id(rows):
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert canonical_jsonl(shuffled, 7, SPEC) == canonical_jsonl(rows, 7, SPEC)


def test_key_order_inside_labels_does_not_change_the_id():
    a = [make_row(0, label={"class": "a", "boxes": [{"x": 0.1, "y": 0.2}]})]
    b = [make_row(0, label={"boxes": [{"y": 0.2, "x": 0.1}], "class": "a"})]
    assert manifest_id(canonical_jsonl(a, 1, SPEC)) == manifest_id(canonical_jsonl(b, 1, SPEC))


@pytest.mark.parametrize(
    "change",
    [
        {"label": {"class": "person", "score": 0.5}},
        {"sha256": "f" * 64},
        {"blob_key": "elsewhere"},
        {"uri": "file:///moved.jpg"},
        {"split": "val"},
        {"label_version_id": 1},
        {"guideline_version": "helmets-v3"},
        {"dup_group_id": 99},
        {"width": 641},
        {"height": 481},
    ],
)
def test_any_row_change_changes_the_id(rows, change):
    changed = copy.deepcopy(rows)
    changed[0].update(change)
    assert manifest_id(canonical_jsonl(changed, 7, SPEC)) != manifest_id(
        canonical_jsonl(rows, 7, SPEC)
    )


def test_adding_or_removing_a_row_changes_the_id(rows):
    base = manifest_id(canonical_jsonl(rows, 7, SPEC))
    assert manifest_id(canonical_jsonl(rows[1:], 7, SPEC)) != base
    assert manifest_id(canonical_jsonl([*rows, make_row(99)], 7, SPEC)) != base


def test_seed_and_spec_change_the_id(rows):
    base = manifest_id(canonical_jsonl(rows, 7, SPEC))
    assert manifest_id(canonical_jsonl(rows, 8, SPEC)) != base
    assert manifest_id(canonical_jsonl(rows, 7, "train=0.7,val=0.2,test=0.1")) != base
    assert manifest_id(canonical_jsonl(rows, 7, "val=0.1,train=0.8,test=0.1")) != base
    assert manifest_id(canonical_jsonl(rows, 7, {"train": 0.8, "val": 0.1, "test": 0.1})) == base


def test_name_and_time_are_not_hashed(rows, tmp_path, monkeypatch):
    first = write_body(tmp_path / "helmets-2026-01", rows, 7, SPEC)
    monkeypatch.setattr("time.time", lambda: 4_000_000_000.0)
    second = write_body(tmp_path / "renamed-copy", list(reversed(rows)), 7, SPEC)
    assert first.manifest_id == second.manifest_id
    assert first.jsonl_path.read_bytes() == second.jsonl_path.read_bytes()
    header = json.loads(first.jsonl_path.read_bytes().split(b"\n")[0])
    assert set(header) == {"format", "version", "seed", "splits", "rows"}


def test_manifest_id_is_sha256_of_body(rows):
    body = canonical_jsonl(rows, 7, SPEC)
    assert manifest_id(body) == "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows.append(dict(rows[0])), "appears twice"),
        (lambda rows: rows[0].update(split="holdout"), "not in the spec"),
        (lambda rows: rows[0].pop("uri"), "missing fields \\['uri'\\]"),
        (lambda rows: rows[0].update(extra=1), "unknown fields \\['extra'\\]"),
        (lambda rows: rows[0].update(sha256="ABC"), "64 lowercase hex"),
        (lambda rows: rows[0].update(label={"score": float("nan")}), "canonical JSON"),
        (lambda rows: rows[0].update(label={"obj": object()}), "canonical JSON"),
        (lambda rows: rows[0].update(width="640"), "width '640' has the wrong type"),
        (lambda rows: rows[0].update(label="helmet"), "label 'helmet' has the wrong type"),
        (lambda rows: rows[0].update(dup_group_id=1.5), "dup_group_id 1.5 has the wrong type"),
        (lambda rows: rows[0].update(height=True), "height True has the wrong type"),
        (lambda rows: rows[0].update(dup_group_id=False), "dup_group_id False has the wrong type"),
        (lambda rows: rows[0].pop("sha256"), "every row needs a sha256"),
    ],
)
def test_bad_rows_are_refused(rows, mutate, message):
    mutate(rows)
    with pytest.raises(ManifestError, match=message):
        canonical_jsonl(rows, 7, SPEC)


def test_bad_seed_and_spec_are_refused(rows):
    with pytest.raises(ManifestError, match="seed must be an integer"):
        canonical_jsonl(rows, True, SPEC)
    with pytest.raises(SplitSpecError):
        canonical_jsonl(rows, 1, "train=0.8,val=0.1")


def test_write_body_names_files_by_hash(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    body = canonical_jsonl(rows, 7, SPEC)
    assert files.manifest_id == manifest_id(body)
    hex_digest = files.manifest_id.removeprefix("sha256:")
    assert files.jsonl_path == tmp_path / f"{hex_digest}.jsonl"
    assert files.parquet_path == tmp_path / f"{hex_digest}.parquet"
    assert files.jsonl_path.read_bytes() == body
    again = write_body(tmp_path, rows, 7, SPEC)
    assert again == files
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [files.jsonl_path.name, files.parquet_path.name]
    )


def test_failed_write_leaves_nothing_behind(rows, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def broken(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_body(tmp_path, rows, 7, SPEC)
    assert list(tmp_path.iterdir()) == []  # no half body, no temp file


def test_read_body_round_trips(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    header, read = read_body(files.jsonl_path)
    assert header["seed"] == 7
    assert header["splits"] == SPEC
    assert read == sorted_rows(rows)


def test_parquet_round_trip_equals_rows(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    header, read = read_parquet_body(files.parquet_path)
    assert read == sorted_rows(rows)
    assert header["id"] == files.manifest_id
    assert verify_parquet(files.parquet_path, files.manifest_id) == []


def test_verify_accepts_an_intact_body(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    assert verify_body(files.jsonl_path, files.manifest_id) == []


def test_verify_detects_a_changed_label(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    data = files.jsonl_path.read_bytes()
    files.jsonl_path.write_bytes(data.replace(b'"class":"helmet"', b'"class":"person"', 1))
    problems = verify_body(files.jsonl_path, files.manifest_id)
    assert len(problems) == 1
    assert "does not match " + files.manifest_id in problems[0]


def test_verify_detects_swapped_lines(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    lines = files.jsonl_path.read_bytes().split(b"\n")
    lines[1], lines[2] = lines[2], lines[1]
    files.jsonl_path.write_bytes(b"\n".join(lines))
    problems = verify_body(files.jsonl_path, files.manifest_id)
    assert any("line 3" in p and "out of order" in p for p in problems)
    assert any("content hash" in p for p in problems)


def test_verify_detects_truncation(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    data = files.jsonl_path.read_bytes()
    files.jsonl_path.write_bytes(data[: len(data) - 40])
    problems = verify_body(files.jsonl_path, files.manifest_id)
    assert any("line 13: not JSON" in p for p in problems)
    assert any("does not end with a newline" in p for p in problems)
    assert any("content hash" in p for p in problems)


def test_verify_detects_dropped_row(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    lines = files.jsonl_path.read_bytes().split(b"\n")
    files.jsonl_path.write_bytes(b"\n".join(lines[:5] + lines[6:]))
    problems = verify_body(files.jsonl_path, files.manifest_id)
    assert "header says 12 rows, body has 11" in problems


def test_verify_detects_a_bad_header(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    data = files.jsonl_path.read_bytes()
    files.jsonl_path.write_bytes(data.replace(b'"seed":7', b'"seed":"7"', 1))
    problems = verify_body(files.jsonl_path, files.manifest_id)
    assert any("seed must be an integer" in p for p in problems)


def test_verify_reports_a_missing_file(tmp_path):
    problems = verify_body(tmp_path / "gone.jsonl", "sha256:" + "0" * 64)
    assert problems
    assert "cannot read" in problems[0]


def test_verify_rejects_the_wrong_id(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    assert verify_body(files.jsonl_path, "sha256:" + "0" * 64)


def test_verify_parquet_detects_a_changed_row(rows, tmp_path):
    import pyarrow.parquet as pq

    files = write_body(tmp_path, rows, 7, SPEC)
    table = pq.read_table(files.parquet_path)
    splits = table.column("split").to_pylist()
    splits[0] = "test" if splits[0] != "test" else "val"
    index = table.schema.get_field_index("split")
    pq.write_table(table.set_column(index, "split", [splits]), files.parquet_path)
    problems = verify_parquet(files.parquet_path, files.manifest_id)
    assert len(problems) == 1
    assert "rows and header hash to" in problems[0]


def test_many_problems_are_capped(tmp_path):
    rows = [make_row(i) for i in range(60)]
    files = write_body(tmp_path, rows, 7, SPEC)
    data = files.jsonl_path.read_bytes()
    files.jsonl_path.write_bytes(data.replace(b'"split":"train"', b'"split":"holdout"'))
    problems = verify_body(files.jsonl_path, files.manifest_id)
    assert len(problems) == 21
    assert problems[-1].endswith("more problems")


label_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.dictionaries(st.text(), label_values)),
        unique_by=lambda t: t[0],
        max_size=20,
    ),
    st.randoms(use_true_random=False),
)
def test_any_labels_round_trip_and_hash_independent_of_order(items, rnd):
    rows = [make_row(i, label=label) for i, label in items]
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    body = canonical_jsonl(rows, 1, SPEC)
    assert canonical_jsonl(shuffled, 1, SPEC) == body
    lines = body.decode().split("\n")[1:-1]
    assert [json.loads(line) for line in lines] == sorted_rows(rows)


def test_deep_verify_checks_rows_even_when_the_hash_matches(rows, tmp_path):
    # a body from another writer: rows out of order, but recorded under its own hash
    lines = canonical_jsonl(rows, 7, SPEC).split(b"\n")
    lines[1], lines[2] = lines[2], lines[1]
    foreign = b"\n".join(lines)
    path = tmp_path / "foreign.jsonl"
    path.write_bytes(foreign)
    assert verify_body(path, manifest_id(foreign)) == []
    problems = verify_body(path, manifest_id(foreign), deep=True)
    assert len(problems) == 1
    assert "line 3" in problems[0]
    assert "out of order" in problems[0]


def test_deep_verify_accepts_an_intact_body(rows, tmp_path):
    files = write_body(tmp_path, rows, 7, SPEC)
    assert verify_body(files.jsonl_path, files.manifest_id, deep=True) == []


def test_verify_parquet_detects_reordered_rows_and_missing_metadata(rows, tmp_path):
    import pyarrow.parquet as pq

    files = write_body(tmp_path, rows, 7, SPEC)
    table = pq.read_table(files.parquet_path)
    reordered = table.take(list(reversed(range(table.num_rows))))
    pq.write_table(reordered, files.parquet_path)
    problems = verify_parquet(files.parquet_path, files.manifest_id)
    assert problems
    assert "rows and header hash to" in problems[0]
    pq.write_table(table.replace_schema_metadata(None), files.parquet_path)
    problems = verify_parquet(files.parquet_path, files.manifest_id)
    assert problems
    assert "no dataops.manifest metadata" in problems[0]
