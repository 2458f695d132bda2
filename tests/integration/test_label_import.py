"""`labels import` of CSV files and Label Studio JSON exports, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.errors import DataopsError
from dataops.events.models import Event
from dataops.labeling import guideline_versions, imports, labels
from dataops.labeling.models import Annotator, LabelVersion
from dataops.labeling.schemas import ImportReport, LabelImportOptions
from tests.support.cli import run_cli, run_json

GUIDELINES = Path(__file__).resolve().parents[2] / "guidelines"


@pytest.fixture
def images(catalog: str, image_dir: Path) -> list[Image]:
    """The usable clothing photos of the test folder, ingested and ordered by file name."""
    ingest([str(image_dir)], transaction=session_scope)
    with session_scope() as s:
        rows = s.scalars(select(Image).where(Image.status == "ok", Image.uri.like("%.jpg")))
        return sorted(
            (i for i in rows if "-" in Path(i.uri).stem and len(Path(i.uri).stem) == 36),
            key=lambda i: i.uri,
        )


def _publish(name: str) -> None:
    with session_scope() as s:
        guideline_versions.publish_guideline(s, GUIDELINES / name / "v1.md")


def _import(path: Path, **options: Any) -> ImportReport:
    with session_scope() as s:
        return imports.import_labels(
            s,
            path.read_bytes(),
            LabelImportOptions(**options),
            filename=path.name,
            base_dir=path.parent,
            actor="ops",
        )


def _count(model: Any = LabelVersion) -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "annotator", "label"])
        writer.writerows(rows)
    return path


def _corpus_labels(corpus: Path) -> dict[str, str]:
    with (corpus / "clothing-dataset-labels.csv").open(newline="") as fh:
        return {row["file"]: row["label"] for row in csv.DictReader(fh)}


def test_csv_import_is_idempotent_and_resolves_every_kind_of_reference(
    images: list[Image], image_dir: Path, corpus: Path
) -> None:
    _publish("clothing")
    truth = _corpus_labels(corpus)
    refs = [
        images[0].sha256,  # a sha256
        images[1].uri,  # the absolute path it was ingested from
        Path(images[2].uri).name,  # relative to the CSV's folder
        Path(images[3].uri).as_uri(),  # a file:// uri
    ]
    rows = [
        [ref, "vendor-a", truth[Path(i.uri).name]] for ref, i in zip(refs, images, strict=False)
    ]
    rows.append([images[0].sha256, "Bob@Acme.com", truth[Path(images[0].uri).name].lower()])
    csv_file = _write_csv(image_dir / "labels.csv", rows)

    report = _import(csv_file, guideline="clothing", vendor=None)
    assert (report.rows, report.created, report.existing, report.errors) == (5, 5, 0, [])
    again = _import(csv_file, guideline="clothing")
    assert (again.created, again.existing) == (0, 5)
    assert _count() == 5

    with session_scope() as s:
        versions = labels.list_labels(s, task="clothing")
        assert {v.status for v in versions} == {"submitted"}
        assert all(v.guideline_id is not None for v in versions)
        by_image = {(v.image_id, v.annotator_id): v.payload["class"] for v in versions}
        assert by_image[(images[0].id, versions[0].annotator_id)] == truth[Path(images[0].uri).name]
        # The lower-case label was stored in the guideline's spelling.
        assert {v.payload["class"] for v in versions} <= set(truth.values())
        names = set(s.scalars(select(Annotator.name)))
        assert names == {"vendor-a", "Bob@Acme.com"}
        assert s.scalar(select(Annotator.email).where(Annotator.name == "Bob@Acme.com")) == (
            "bob@acme.com"
        )
        imported = list(s.scalars(select(Event).where(Event.action == "labels.imported")))
        assert [(e.actor, e.details["created"]) for e in imported] == [("ops", 5), ("ops", 0)]


def test_a_changed_label_supersedes_and_accept_marks_vetted_labels(
    images: list[Image], image_dir: Path
) -> None:
    _publish("clothing")
    first = _write_csv(image_dir / "a.csv", [[images[0].sha256, "ann", "Dress"]])
    second = _write_csv(image_dir / "b.csv", [[images[0].sha256, "ann", "Skirt"]])
    assert _import(first).created == 1
    assert _import(second, guideline="clothing:1", task="default").created == 1
    with session_scope() as s:
        older, newer = labels.list_labels(s, image_id=images[0].id)
        assert newer.supersedes_id == older.id
        assert [v.id for v in labels.live_versions(s, image_ids=[images[0].id])] == [newer.id]

    vetted = _write_csv(
        image_dir / "vetted.csv", [[i.sha256, "expert", "Other"] for i in images[1:3]]
    )
    report = _import(vetted, accept=True, guideline="clothing")
    assert report.created == 2
    with session_scope() as s:
        accepted = labels.accepted_label(s, images[1].id, "clothing")
        assert accepted is not None
        assert accepted.payload == {"class": "Other"}
        assert accepted.status == "accepted"


def test_bad_rows_import_nothing_and_are_reported_per_row(
    images: list[Image], image_dir: Path
) -> None:
    _publish("clothing")
    csv_file = _write_csv(
        image_dir / "bad.csv",
        [
            [images[0].sha256, "ann", "Dress"],
            ["0" * 64, "ann", "Dress"],
            ["no/such/file.jpg", "ann", "Dress"],
            [images[1].sha256, "ann", "Sweater"],
            [images[2].sha256, "ann", ""],
            ["", "ann", "Dress"],
        ],
    )
    report = _import(csv_file, guideline="clothing")
    assert report.created == 0
    assert _count() == 0
    assert _count(Annotator) == 0
    found = [(e.line, e.field) for e in report.errors]
    assert found == [(3, "image"), (4, "image"), (5, "label"), (6, "label"), (7, "image")]
    messages = {e.line: e.message for e in report.errors}
    assert "ingest it first" in messages[3]
    assert "no image recorded at no/such/file.jpg" in messages[4]
    assert "Sweater" in messages[5]
    assert "T-Shirt" in messages[5]

    quarantined = _write_csv(
        image_dir / "q.csv", [["african_elephants_truncated_file.jpg", "a", "Hat"]]
    )
    [problem] = _import(quarantined).errors
    assert "quarantined" in problem.message


def test_unreadable_files_are_one_clear_error(images: list[Image], image_dir: Path) -> None:
    cases = [
        (b"image,who,label\nx,y,z\n", "csv", "lacks annotator"),
        (b"\xff\xfe\x00broken", "csv", "not UTF-8"),
        (b"[{", "labelstudio", "not a JSON document"),
        (b'{"data": {}}', "labelstudio", "JSON list of tasks"),
    ]
    for data, fmt, needle in cases:
        path = image_dir / f"bad.{'csv' if fmt == 'csv' else 'json'}"
        path.write_bytes(data)
        with pytest.raises(DataopsError, match=needle):
            _import(path)
    _publish("ppe-detection")
    path = _write_csv(image_dir / "boxes.csv", [[images[0].sha256, "a", "person"]])
    with pytest.raises(DataopsError, match="Label Studio JSON"):
        _import(path, guideline="ppe-detection")


def _ls_annotation(
    annotation_id: int,
    task_id: int,
    result: list[dict[str, Any]],
    *,
    completed_by: Any,
    updated_at: str,
    cancelled: bool = False,
) -> dict[str, Any]:
    """One annotation as Label Studio 1.23 writes it in a JSON export."""
    return {
        "id": annotation_id,
        "completed_by": completed_by,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": "2026-03-01T09:00:00.000000Z",
        "updated_at": updated_at,
        "draft_created_at": None,
        "lead_time": 12.4,
        "prediction": {},
        "result_count": len(result),
        "unique_id": f"a1b2c3d4-{annotation_id:04d}",
        "import_id": None,
        "last_action": None,
        "bulk_created": False,
        "task": task_id,
        "project": 3,
        "updated_by": completed_by if isinstance(completed_by, int) else completed_by["id"],
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def _choice(label: str) -> list[dict[str, Any]]:
    return [
        {
            "original_width": 400,
            "original_height": 533,
            "image_rotation": 0,
            "value": {"choices": [label]},
            "id": "Xy12AbC",
            "from_name": "label",
            "to_name": "image",
            "type": "choices",
            "origin": "manual",
        }
    ]


def _ls_task(
    task_id: int, data: dict[str, Any], annotations: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": task_id,
        "annotations": annotations,
        "file_upload": None,
        "drafts": [],
        "predictions": [],
        "data": data,
        "meta": {"batch": "b-7"},
        "created_at": "2026-03-01T08:00:00.000000Z",
        "updated_at": "2026-03-01T09:30:00.000000Z",
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": sum(a["was_cancelled"] for a in annotations),
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 3,
        "updated_by": None,
        "comment_authors": [],
    }


def _clothing_export(images: list[Image], relabel: str = "Dress") -> list[dict[str, Any]]:
    signed = "http://127.0.0.1:8000/api/images/{}?exp=1767225600&sig=abc"
    return [
        _ls_task(
            11,
            {"image": signed.format(images[0].sha256), "dataops_sha256": images[0].sha256},
            [
                _ls_annotation(
                    101,
                    11,
                    _choice("T-Shirt"),
                    completed_by=4,
                    updated_at="2026-03-01T09:10:00.000000Z",
                ),
                _ls_annotation(
                    102,
                    11,
                    _choice(relabel),
                    completed_by={
                        "id": 5,
                        "email": "Lee@vendor.example",
                        "first_name": "",
                        "last_name": "",
                    },
                    updated_at="2026-03-01T09:20:00.000000Z"
                    if relabel == "Dress"
                    else "2026-03-02T10:00:00.000000Z",
                ),
            ],
        ),
        _ls_task(
            12,
            {"image": images[1].uri},
            [
                _ls_annotation(
                    103,
                    12,
                    [],
                    completed_by=4,
                    updated_at="2026-03-01T09:25:00.000000Z",
                    cancelled=True,
                ),
                _ls_annotation(
                    104,
                    12,
                    _choice("Shoes"),
                    completed_by=5,
                    updated_at="2026-03-01T09:26:00.000000Z",
                ),
            ],
        ),
        _ls_task(13, {"image": images[2].uri}, []),  # exported with download_all_tasks
    ]


def test_labelstudio_export_import(images: list[Image], image_dir: Path) -> None:
    _publish("clothing")
    export = image_dir / "project-3-at-2026-03-01.json"
    export.write_text(json.dumps(_clothing_export(images)))
    report = _import(export, guideline="clothing")
    assert (report.rows, report.created, report.existing, report.skipped) == (4, 3, 0, 1)
    assert _import(export, guideline="clothing").existing == 3

    with session_scope() as s:
        annotators = {a.ls_user_id: a for a in s.scalars(select(Annotator))}
        assert set(annotators) == {4, 5}
        assert annotators[5].email == "lee@vendor.example"
        assert {a.connection for a in annotators.values()} == {"default"}
        assert {a.mapped_by for a in annotators.values()} == {"import"}
        versions = labels.list_labels(s)
        assert {v.source_id for v in versions} == {"default:101", "default:102", "default:104"}
        assert {v.payload["class"] for v in versions} == {"T-Shirt", "Dress", "Shoes"}

    # The vendor edits annotation 102; the next export supersedes it.
    export.write_text(json.dumps(_clothing_export(images, relabel="Blouse")))
    report = _import(export, guideline="clothing")
    assert (report.created, report.existing) == (1, 2)
    with session_scope() as s:
        [edit] = [v for v in labels.list_labels(s) if v.payload == {"class": "Blouse"}]
        previous = s.get(LabelVersion, edit.supersedes_id)
        assert previous is not None
        assert previous.source_id == edit.source_id == "default:102"


def test_labelstudio_export_with_unknown_images_imports_nothing(
    images: list[Image], image_dir: Path
) -> None:
    tasks = _clothing_export(images)
    tasks[1]["data"]["image"] = "/data/upload/3/7d1e-photo.jpg"
    tasks.append(
        _ls_task(
            14,
            {"image": images[3].uri},
            [
                _ls_annotation(
                    105,
                    14,
                    [*_choice("Hat"), *_choice("Cap")],
                    completed_by=4,
                    updated_at="2026-03-01T09:40:00.000000Z",
                )
            ],
        )
    )
    export = image_dir / "export.json"
    export.write_text(json.dumps(tasks))
    report = _import(export)
    assert report.created == 0
    assert _count() == 0
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "data.image"),
        (4, "annotations[0].result[0].value.choices"),
    ]
    assert "/data/upload/3/7d1e-photo.jpg" in report.errors[0].message
    assert "exactly one class" in report.errors[1].message


def test_detection_export(images: list[Image], image_dir: Path) -> None:
    _publish("ppe-detection")

    def box(label: str, x: float, y: float, w: float, h: float) -> dict[str, Any]:
        return {
            "original_width": 400,
            "original_height": 533,
            "image_rotation": 0,
            "value": {
                "x": x,
                "y": y,
                "width": w,
                "height": h,
                "rotation": 0,
                "rectanglelabels": [label],
            },
            "id": f"r{label}",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "origin": "manual",
        }

    tasks = [
        _ls_task(
            21,
            {"image": images[0].uri, "dataops_sha256": images[0].sha256},
            [
                _ls_annotation(
                    201,
                    21,
                    [
                        box("person", 10, 20, 30, 60),
                        box("helmet", 15, 20, 10, 8.0000001),
                        box("vest", 90, 95, 10.5, 5),
                    ],
                    completed_by=4,
                    updated_at="2026-03-01T09:10:00Z",
                )
            ],
        ),
        _ls_task(
            22,
            {"image": images[1].uri},
            [_ls_annotation(202, 22, [], completed_by=4, updated_at="2026-03-01T09:11:00Z")],
        ),
    ]
    export = image_dir / "ppe.json"
    export.write_text(json.dumps(tasks))
    report = _import(export, guideline="ppe-detection", connection="default")
    assert (report.created, report.errors) == (2, [])
    with session_scope() as s:
        first, empty = labels.list_labels(s, task="ppe-detection")
        boxes = first.payload["boxes"]
        assert [b["class"] for b in boxes] == ["person", "helmet", "vest"]
        assert boxes[0] == pytest.approx(
            {"class": "person", "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.6}
        )
        assert boxes[2]["x"] + boxes[2]["w"] == pytest.approx(1.0)  # clamped to the image
        assert empty.payload == {"boxes": []}  # no objects is an answer


def test_cli_import_reports_errors_and_exit_code(images: list[Image], image_dir: Path) -> None:
    run_json("guidelines", "publish", str(GUIDELINES / "clothing" / "v1.md"))
    good = _write_csv(image_dir / "good.csv", [[images[0].sha256, "ann", "Dress"]])
    out = run_json("labels", "import", str(good), "--accept", "--guideline", "clothing")
    assert out == {"rows": 1, "created": 1, "existing": 0, "skipped": 0, "errors": []}
    assert run_json("labels", "import", str(good), "--guideline", "clothing")["existing"] == 1
    listed = run_json("labels", "list", "--image", images[0].sha256[:12], "--status", "accepted")
    assert [(v["payload"], v["annotator"], v["task"]) for v in listed["labels"]] == [
        ({"class": "Dress"}, "ann", "clothing")
    ]

    bad = _write_csv(
        image_dir / "bad.csv", [[images[1].sha256, "ann", "Dress"], ["f" * 64, "ann", "Dress"]]
    )
    proc = run_cli("labels", "import", str(bad), "--json", check=False)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["created"] == 0
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "image")]
    assert "nothing was imported" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(run_json("labels", "list")["labels"]) == 1


# --- nothing is dropped: unknown result types, JSON_MIN, Label Studio's own paths ----------


def _region(kind: str, label: str | None, **geometry: float) -> dict[str, Any]:
    """A region result as Label Studio 1.23 exports it; `kind` is the result type."""
    value: dict[str, Any] = {"rotation": 0, **geometry}
    if label is not None:
        value[kind] = [label]
    return {
        "original_width": 400,
        "original_height": 533,
        "image_rotation": 0,
        "value": value,
        "id": f"r{kind}{label}",
        "from_name": "label",
        "to_name": "image",
        "type": kind,
        "origin": "manual",
    }


def _one_annotation_each(images: list[Image], results: list[list[dict[str, Any]]]) -> list[Any]:
    return [
        _ls_task(
            30 + n,
            {"image": images[n].uri},
            [
                _ls_annotation(
                    300 + n, 30 + n, result, completed_by=4, updated_at="2026-03-01T09:00:00Z"
                )
            ],
        )
        for n, result in enumerate(results)
    ]


def test_results_dataops_cannot_store_refuse_the_whole_file(
    images: list[Image], image_dir: Path
) -> None:
    _publish("ppe-detection")
    box = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0}
    polygon = {"points": [[10.0, 10.0], [40.0, 12.0], [30.0, 50.0]], "closed": True}
    tasks = _one_annotation_each(
        images,
        [
            [_region("labels", "person", **box)],  # <Rectangle> + <Labels>: a box
            [_region("polygonlabels", "person", **polygon)],  # polygon only
            [
                _region("rectanglelabels", "helmet", **box),
                _region("polygonlabels", "vest", **polygon),
            ],
            [_region("rectangle", None, **box)],  # a box nobody labeled
            [_region("labels", "helmet", start=0, end=4)],  # labels with no rectangle
            [{**_region("textarea", None), "value": {"text": ["blurry"]}}],
        ],
    )
    export = image_dir / "mixed.json"
    export.write_text(json.dumps(tasks))
    report = _import(export, guideline="ppe-detection", accept=True)
    assert report.created == 0
    assert _count() == 0  # never "no objects" accepted as ground truth
    problems = {(e.row, e.field): e.message for e in report.errors}
    assert sorted(problems) == [
        (2, "annotations[0].result[0].type"),
        (3, "annotations[0].result[1].type"),
        (4, "annotations[0].result[0].type"),
        (5, "annotations[0].result[0].value"),
        (6, "annotations[0].result[0].type"),
    ]
    assert "a polygon is not imported" in problems[(2, "annotations[0].result[0].type")]
    assert "redraw" not in problems[(3, "annotations[0].result[1].type")]
    assert "without a label" in problems[(4, "annotations[0].result[0].type")]
    assert "result type textarea is not imported" in problems[(6, "annotations[0].result[0].type")]

    # Only the <Rectangle> + <Labels> task left: it is a box like any other.
    export.write_text(json.dumps(tasks[:1]))
    assert _import(export, guideline="ppe-detection").created == 1
    with session_scope() as s:
        [version] = labels.list_labels(s, task="ppe-detection")
    assert version.payload["boxes"] == [
        pytest.approx({"class": "person", "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4})
    ]


def test_a_json_min_export_is_refused_naming_the_export_to_use(
    images: list[Image], image_dir: Path
) -> None:
    rows = [
        {
            "image": images[0].uri,
            "id": 11,
            "choice": "Dress",
            "annotator": "ann@vendor.example",
            "annotation_id": 101,
            "created_at": "2026-03-01T09:00:00.000000Z",
            "updated_at": "2026-03-01T09:00:00.000000Z",
            "lead_time": 3.2,
        }
    ]
    export = image_dir / "project-3-min.json"
    export.write_text(json.dumps(rows))
    with pytest.raises(DataopsError, match=r"JSON_MIN export .* export the project as JSON"):
        _import(export)
    proc = run_cli("labels", "import", str(export), "--json", check=False)
    assert proc.returncode == 2
    assert "JSON_MIN" in proc.stderr and "Export → JSON" in proc.stderr
    assert _count() == 0


def test_labelstudio_paths_resolve_through_the_path_map(
    images: list[Image], image_dir: Path, api: Any, make_user: Any
) -> None:
    _publish("clothing")
    root = image_dir.as_posix()
    forms = [
        f"/data/upload/3/{Path(images[0].uri).name}",
        f"/data/local-files/?d=photos%2F{Path(images[1].uri).name}",
        f"http://labelstudio:8080/data/upload/3/{Path(images[2].uri).name}",
        f"s3://vendor-bucket/incoming/{Path(images[3].uri).name}",
    ]
    tasks = [
        _ls_task(
            40 + n,
            {"image": form},
            [
                _ls_annotation(
                    400 + n,
                    40 + n,
                    _choice("Dress"),
                    completed_by=4,
                    updated_at="2026-03-01T09:00:00Z",
                )
            ],
        )
        for n, form in enumerate(forms)
    ]
    export = image_dir / "paths.json"
    export.write_text(json.dumps(tasks))
    unmapped = _import(export)
    assert [e.field for e in unmapped.errors] == ["data.image"] * 4
    assert all("--path-map" in e.message for e in unmapped.errors)
    (image_dir / "photos").mkdir()
    shutil.copy(images[1].uri, image_dir / "photos")  # ingested again from a second folder
    ingest([str(image_dir / "photos")], transaction=session_scope)
    path_map = [
        f"/data/upload/3/={root}/",
        f"/data/local-files/={root}/",
        f"s3://vendor-bucket/incoming/={root}/",
    ]
    proc = run_cli(
        "labels", "import", str(export), *[f"--path-map={p}" for p in path_map], "--json"
    )
    assert json.loads(proc.stdout)["created"] == 4
    with session_scope() as s:
        assert {v.image_id for v in labels.list_labels(s)} == {i.id for i in images[:4]}

    ops = {"Authorization": f"Bearer {make_user('labeling_ops')}"}
    body = {"format": "labelstudio", "content": json.dumps(tasks), "path_map": path_map}
    again = api.post("/v1/labels/import", json=body, headers=ops)
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["existing"]) == (0, 4)
    bad = api.post("/v1/labels/import", json={**body, "path_map": ["no-equals"]}, headers=ops)
    assert bad.status_code == 422
    wrong = run_cli("labels", "import", str(export), "--path-map", "=/x", "--json", check=False)
    assert wrong.returncode == 2
    assert "PREFIX=ROOT" in wrong.stderr


def test_tasks_dataops_pushed_are_found_by_their_task_key(
    images: list[Image], image_dir: Path
) -> None:
    from dataops.labeling import tasks as task_keys
    from dataops.selection.models import Batch
    from tests.support.api import make_queue

    queue_id = make_queue("acme", [images[0].id, images[1].id])
    with session_scope() as s:
        batch_id = s.scalars(select(Batch.id).where(Batch.queue_id == queue_id)).one()
        keys = task_keys.ensure_keys(s, batch_id, queue_id)
        by_image = {ref.image_id: key for key, ref in task_keys.resolve(s, keys.values()).items()}
    tasks = [
        _ls_task(
            50 + n,
            {
                "image": f"http://127.0.0.1:8000/v1/media/t/{by_image[image.id]}?exp=1&sig=x",
                "dataops_item": by_image[image.id],
            },
            [
                _ls_annotation(
                    500 + n,
                    50 + n,
                    _choice("helmet"),
                    completed_by=4,
                    updated_at="2026-03-01T09:00:00Z",
                )
            ],
        )
        for n, image in enumerate(images[:2])
    ]
    tasks.append(
        _ls_task(
            59,
            {"dataops_item": "f" * 32},
            [
                _ls_annotation(
                    509, 59, _choice("helmet"), completed_by=4, updated_at="2026-03-01T09:00:00Z"
                )
            ],
        )
    )
    export = image_dir / "keys.json"
    export.write_text(json.dumps(tasks))
    report = _import(export)
    assert [(e.row, e.field) for e in report.errors] == [(3, "data.dataops_item")]
    assert "no task key" in report.errors[0].message
    export.write_text(json.dumps(tasks[:2]))
    assert _import(export).created == 2
    with session_scope() as s:
        assert {v.image_id for v in labels.list_labels(s)} == {images[0].id, images[1].id}
