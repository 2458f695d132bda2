"""`dataops audit ...` as a user runs it: agreement on CSV files, batch audits and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select

from dataops.audits.schemas import AuditRequest
from dataops.catalog.ingest import ingest
from dataops.catalog.models import Image
from dataops.db import session_scope
from dataops.jobs.models import Job
from dataops.labeling.models import Annotator, Guideline, LabelVersion, Queue, Vendor
from dataops.selection.models import Batch, BatchItem, ImageClaim
from tests.support.cli import run_cli, run_json

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, missing data. Published alpha: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}
WIDE = {"COLUMNS": "1000"}
CONTRACT_KEYS = {
    "n_items",
    "n_items_paired",
    "n_annotators",
    "percent_agreement",
    "cohen_kappa",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha",
    "standard_errors",
}


@pytest.fixture
def k2011(tmp_path: Path) -> Path:
    lines = ["item,annotator,label"]
    for annotator, values in KRIPPENDORFF_2011.items():
        lines += [f"u{i + 1},{annotator},{v}" for i, v in enumerate(values) if v is not None]
    path = tmp_path / "k2011.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_agreement_reproduces_the_published_example(
    k2011: Path, level: str, published: float
) -> None:
    data = run_json("audit", "agreement", "--csv", str(k2011), "--level", level)
    assert set(data) == CONTRACT_KEYS
    assert (data["n_items"], data["n_annotators"]) == (12, 4)
    assert data["cohen_kappa"] is None
    assert data["krippendorff_alpha"] == pytest.approx(published, abs=5e-4)


def test_agreement_bootstrap_adds_seeded_intervals(k2011: Path) -> None:
    args = ("audit", "agreement", "--csv", str(k2011), "--bootstrap", "300", "--seed", "5")
    first, again = run_json(*args), run_json(*args)
    assert set(first) == {*CONTRACT_KEYS, "ci"}
    assert first == again
    low, high = first["ci"]["krippendorff_alpha"]
    assert low <= first["krippendorff_alpha"] <= high
    assert (first["ci"]["n_resamples"], first["ci"]["seed"]) == (300, 5)


def test_agreement_cohen_kappa_for_two_annotators(tmp_path: Path) -> None:
    a = ["cat", "cat", "dog", "dog", "bird", "cat", "dog", "bird"]
    b = ["cat", "dog", "dog", "dog", "bird", "cat", "cat", "bird"]
    rows = [f"i{i},ann,{x}" for i, x in enumerate(a)] + [f"i{i},ben,{x}" for i, x in enumerate(b)]
    path = tmp_path / "two.csv"
    path.write_text("item,annotator,label\n" + "\n".join(rows) + "\n")
    data = run_json("audit", "agreement", "--csv", str(path))
    assert data["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert data["percent_agreement"] == pytest.approx(6 / 8)


def test_agreement_table_without_json(k2011: Path) -> None:
    out = run_cli("audit", "agreement", "--csv", str(k2011)).stdout
    assert "krippendorff_alpha" in out
    assert "0.743" in out


@pytest.mark.parametrize(
    ("content", "level", "message"),
    [
        ("item,annotator,label\na,x,1\nb,y,\n", "nominal", "line 3, column 'label': empty value"),
        ("item,annotator\na,x\n", "nominal", "line 1: missing column(s) label"),
        ("item,annotator,label\na,x,1\na,x,2\n", "nominal", "line 3, column 'annotator'"),
        ("item,annotator,label\na,x,1\nb,x,high\n", "interval", "line 3, column 'label'"),
        ("item,annotator,label\na,x,low\n", "ordinal", "need --categories"),
    ],
)
def test_bad_csv_is_one_clear_line(tmp_path: Path, content: str, level: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    # A wide terminal: Rich would otherwise wrap the long temporary path onto a second line.
    proc = run_cli(
        "audit", "agreement", "--csv", str(path), "--level", level, check=False, env=WIDE
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_agreement_weighted_kappa_follows_the_category_order(tmp_path: Path, weights: str) -> None:
    order = ["low", "mid", "high"]
    a = [0, 1, 2, 2, 1, 0, 0, 2, 1, 1]
    b = [0, 2, 2, 1, 1, 0, 1, 2, 0, 1]
    rows = [f"i{i},ann,{order[x]}" for i, x in enumerate(a)]
    rows += [f"i{i},ben,{order[x]}" for i, x in enumerate(b)]
    path = tmp_path / "ordinal.csv"
    path.write_text("item,annotator,label\n" + "\n".join(rows) + "\n")
    args = ("audit", "agreement", "--csv", str(path), "--weights", weights)
    data = run_json(*args, "--categories", "low,mid,high")
    assert set(data) == {*CONTRACT_KEYS, "weights", "weighted_kappa"}
    assert data["weights"] == weights
    assert data["weighted_kappa"] == pytest.approx(cohen_kappa_score(a, b, weights=weights))
    out = run_cli(*args, "--categories", "low,mid,high", env=WIDE).stdout
    assert f"weighted_kappa ({weights})" in out
    assert "gwet_ac1" in out
    # Without an order the text labels would sort high < low < mid: refused, with the fix.
    proc = run_cli(*args, check=False, env=WIDE)
    assert proc.returncode == 2
    assert "--weights needs ordered categories" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_agreement_reports_ac1_interval_and_items_used(k2011: Path) -> None:
    data = run_json("audit", "agreement", "--csv", str(k2011))
    assert (data["n_items"], data["n_items_paired"]) == (12, 11)
    # irrCAC 0.4.4 on its raw_4raters example (the same data).
    assert data["fleiss_kappa"] == pytest.approx(0.761169275422411, abs=1e-12)
    assert data["gwet_ac1"] == pytest.approx(0.775444068126995, abs=1e-12)
    assert data["standard_errors"]["gwet_ac1"]["se"] == pytest.approx(0.142949950640765)
    assert "weighted_kappa" not in data
    out = run_cli("audit", "agreement", "--csv", str(k2011), env=WIDE).stdout
    assert "used all 12 items (11 rated at least twice)" in out


def test_unknown_weights_is_one_clear_line(k2011: Path) -> None:
    args = ("audit", "agreement", "--csv", str(k2011), "--level", "ordinal", "--weights", "cubic")
    proc = run_cli(*args, check=False, env=WIDE)
    assert proc.returncode == 2
    assert "--weights must be 'linear' or 'quadratic'" in proc.stderr


def test_missing_csv_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli("audit", "agreement", "--csv", str(tmp_path / "nope.csv"), check=False)
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ordinal_text_labels_follow_the_given_order(tmp_path: Path) -> None:
    path = tmp_path / "ordinal.csv"
    rows = [
        "a,x,low",
        "a,y,mid",
        "b,x,high",
        "b,y,high",
        "c,x,mid",
        "c,y,mid",
        "d,x,low",
        "d,y,low",
    ]
    path.write_text("item,annotator,label\n" + "\n".join(rows) + "\n")
    ordered = run_json(
        "audit",
        "agreement",
        "--csv",
        str(path),
        "--level",
        "ordinal",
        "--categories",
        "low,mid,high",
    )
    numeric = tmp_path / "numeric.csv"
    numeric.write_text(
        path.read_text().replace("low", "1").replace("mid", "2").replace("high", "3")
    )
    assert ordered["krippendorff_alpha"] == pytest.approx(
        run_json("audit", "agreement", "--csv", str(numeric), "--level", "ordinal")[
            "krippendorff_alpha"
        ]
    )


def _batch(image_dir: Path) -> int:
    """Two annotators on four items: three agree, one tie -> pass rate 0.75."""
    ingest([str(image_dir)], transaction=session_scope)
    answers = [("cat", "cat"), ("dog", "dog"), ("cat", "dog"), ("bird", "bird")]
    with session_scope() as s:
        ids = list(s.scalars(select(Image.id).where(Image.status == "ok").order_by(Image.id)))[:4]
        vendor = Vendor(name="acme")
        s.add(vendor)
        s.flush()
        annotators = [Annotator(name=n, vendor_id=vendor.id) for n in ("ann", "ben")]
        guideline = Guideline(
            name="animals",
            version=1,
            sha256="c" * 64,
            kind="classification",
            classes=["bird", "cat", "dog"],
            body="# animals",
            label_config="<View/>",
        )
        s.add_all([*annotators, guideline])
        s.flush()
        queue = Queue(name="acme-animals", vendor_id=vendor.id, guideline_id=guideline.id)
        s.add(queue)
        s.flush()
        batch = Batch(
            purpose="active_learning", strategy="random", queue_id=queue.id, status="delivered"
        )
        s.add(batch)
        s.flush()
        for position, (image_id, pair) in enumerate(zip(ids, answers, strict=True)):
            s.add(
                BatchItem(
                    batch_id=batch.id,
                    image_id=image_id,
                    item_key=f"cli{image_id}",
                    position=position,
                    is_overlap=True,
                    required_annotations=2,
                )
            )
            s.add(ImageClaim(image_id=image_id, batch_id=batch.id))
            for annotator, cls in zip(annotators, pair, strict=True):
                key = f"{image_id}-{annotator.name}"
                s.add(
                    LabelVersion(
                        image_id=image_id,
                        annotator_id=annotator.id,
                        batch_id=batch.id,
                        payload={"class": cls},
                        source="csv",
                        source_id=key,
                        source_key=f"csv:{key}:-",
                    )
                )
        s.flush()
        return batch.id


def test_audit_run_show_list_report(catalog: str, image_dir: Path, tmp_path: Path) -> None:
    batch_id = _batch(image_dir)
    result = run_json("audit", "run", str(batch_id), "--gate", "0.7", "--bootstrap", "100")
    assert result["job_id"]
    assert result["decision"] == "accepted"
    assert result["pass_rate"] == pytest.approx(0.75)
    assert (result["n_items"], result["n_passed"], result["n_disputed"]) == (4, 3, 1)
    assert result["relabel_batch_id"] is not None
    audit_id = result["id"]
    with session_scope() as s:  # the job records the whole request, defaults from the model
        job = s.get(Job, result["job_id"])
        assert job is not None
        expected = AuditRequest(batch_id=batch_id, gate=0.7, resamples=100)
        assert job.params == expected.model_dump(mode="json")

    shown = run_json("audit", "show", str(audit_id))
    assert shown["decision"] == "accepted"
    assert shown["metrics"]["summary"]["n_items"] == 4
    assert shown["metrics"]["summary"]["cohen_kappa"] is not None
    assert "ci" in shown["metrics"]["summary"]
    assert "ACCEPTED" in run_cli("audit", "show", str(audit_id)).stdout

    listed = run_json("audit", "list", "--batch", str(batch_id))
    assert [a["id"] for a in listed["audits"]] == [audit_id]
    assert run_json("audit", "list", "--batch", str(batch_id + 1000)) == {"audits": []}

    out = tmp_path / "reports"
    written = run_json("audit", "report", str(audit_id), "--out", str(out))
    names = sorted(Path(p).name for p in written["files"])
    assert names == [f"audit-{audit_id}.html", f"audit-{audit_id}.json"]
    assert "ACCEPTED" in (out / f"audit-{audit_id}.html").read_text()
    assert json.loads((out / f"audit-{audit_id}.json").read_text())["decision"] == "accepted"

    again = run_cli("audit", "run", str(batch_id), check=False)
    assert again.returncode == 2
    assert f"batch {batch_id} is already accepted by audit {audit_id}" in again.stderr


def test_audit_run_unknown_batch_fails_cleanly(catalog: str) -> None:
    proc = run_cli("audit", "run", "4242", "--json", check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "no batch 4242" in proc.stderr
    assert "Traceback" not in proc.stderr
    with session_scope() as s:
        assert s.scalar(select(Job.id)) is None  # refused before a job was recorded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--gate", "1.5"), "--gate must be less than or equal to 1, got 1.5"),
        (("--bootstrap", "-1"), "--bootstrap must be greater than or equal to 0, got -1"),
        (("--gold-threshold", "2"), "--gold-threshold must be less than or equal to 1, got 2.0"),
    ],
)
def test_audit_run_bad_parameters_name_the_option(
    catalog: str, args: tuple[str, ...], message: str
) -> None:
    proc = run_cli("audit", "run", "1", *args, check=False, env=WIDE)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    with session_scope() as s:
        assert s.scalar(select(Job.id)) is None
