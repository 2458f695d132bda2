import csv
import functools
import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from dataops.errors import DataopsError
from dataops.manifests.export import coco_dataset, export_coco, export_folder
from dataops.manifests.loader import BlobIntegrityError, class_names
from dataops.manifests.splits import assign_splits

SPEC = "train=0.5,val=0.25,test=0.25"
N_IMAGES = 16


def read_uri(row):
    return Path(urlparse(row["uri"]).path).read_bytes()


def read_from(root, row):
    return (root / f"{row['sha256']}.jpg").read_bytes()


def to_small_tensor(image):
    import torch

    pixels = np.asarray(image.resize((24, 32)), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)


@pytest.fixture
def clothing_rows(tmp_path, corpus):
    """Manifest rows for real labelled clothing photos copied into tmp_path."""
    with open(corpus / "clothing-dataset-labels.csv", newline="") as handle:
        labels = {r["file"]: r["label"] for r in csv.DictReader(handle)}
    src_dir = corpus / "clothing-dataset"
    names = sorted(name for name in labels if (src_dir / name).exists())[:N_IMAGES]
    images = tmp_path / "blobs"
    images.mkdir()
    rows = []
    for name in names:
        dst = images / name
        shutil.copy(src_dir / name, dst)
        data = dst.read_bytes()
        with Image.open(dst) as img:
            width, height = img.size
        rows.append(
            {
                "sha256": hashlib.sha256(data).hexdigest(),
                "blob_key": f"blobs/{name}",
                "uri": dst.as_uri(),
                "split": "",
                "label_version_id": len(rows) + 1,
                "label": {"class": labels[name]},
                "guideline_version": "clothing-v1",
                "dup_group_id": None,
                "width": width,
                "height": height,
            }
        )
    splits = assign_splits([r["sha256"] for r in rows], 0, SPEC)
    for row in rows:
        row["split"] = splits[row["sha256"]]
    return rows


def dataset(*args, **kwargs):
    from dataops.manifests.loader import RowsDataset

    return RowsDataset(*args, **kwargs)


def test_importing_manifests_does_not_import_torch():
    code = (
        "import sys, dataops.manifests, dataops.manifests.splits, dataops.manifests.body, "
        "dataops.manifests.loader, dataops.manifests.export; "
        "print(sorted(m for m in ('torch', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dataset_yields_images_and_sorted_class_indices(clothing_rows):
    import torch.utils.data

    train = dataset(clothing_rows, "train", read_uri)
    assert isinstance(train, torch.utils.data.Dataset)
    assert train.classes == sorted({r["label"]["class"] for r in clothing_rows})
    expected = [r for r in clothing_rows if r["split"] == "train"]
    assert 0 < len(train) == len(expected) < len(clothing_rows)
    for i, row in enumerate(expected):
        image, target = train[i]
        assert isinstance(image, Image.Image)
        assert image.mode == "RGB"
        assert image.size == (row["width"], row["height"])
        assert train.classes[target] == row["label"]["class"]


def test_every_split_shares_one_class_index(clothing_rows):
    datasets = [dataset(clothing_rows, s, read_uri) for s in ("train", "val", "test")]
    assert all(d.class_to_idx == datasets[0].class_to_idx for d in datasets)
    assert sum(len(d) for d in datasets) == len(clothing_rows)


@pytest.mark.slow
def test_dataloader_with_two_worker_processes(clothing_rows, tmp_path):
    from torch.utils.data import DataLoader

    ds = dataset(
        clothing_rows,
        "train",
        functools.partial(read_from, tmp_path / "by-sha"),
        transform=to_small_tensor,
    )
    (tmp_path / "by-sha").mkdir()
    for row in clothing_rows:
        shutil.copy(Path(urlparse(row["uri"]).path), tmp_path / "by-sha" / f"{row['sha256']}.jpg")
    # spawn pickles the dataset into each worker, as on macOS and Windows
    loader = DataLoader(ds, batch_size=3, num_workers=2, multiprocessing_context="spawn")
    images, targets = [], []
    for batch_images, batch_targets in loader:
        images.append(batch_images)
        targets.extend(batch_targets.tolist())
    assert sum(len(b) for b in images) == len(ds)
    assert images[0].shape[1:] == (3, 32, 24)
    assert targets == [ds.class_to_idx[r["label"]["class"]] for r in ds.rows]


def test_dataset_pickles_without_open_handles(clothing_rows):
    ds = dataset(clothing_rows, "val", read_uri)
    clone = pickle.loads(pickle.dumps(ds))  # noqa: S301 - our own bytes
    assert type(clone) is type(ds)
    assert clone.rows == ds.rows
    assert np.array_equal(np.asarray(clone[0][0]), np.asarray(ds[0][0]))


def test_changed_image_raises_naming_the_file(clothing_rows):
    row = next(r for r in clothing_rows if r["split"] == "train")
    path = Path(urlparse(row["uri"]).path)
    other = next(r for r in clothing_rows if r is not row)
    path.write_bytes(Path(urlparse(other["uri"]).path).read_bytes())
    ds = dataset(clothing_rows, "train", read_uri)
    with pytest.raises(BlobIntegrityError, match=path.name) as info:
        ds[ds.rows.index(row)]
    assert row["sha256"] in str(info.value)
    unchecked = dataset(clothing_rows, "train", read_uri, verify_sha256=False)
    assert unchecked[ds.rows.index(row)][0].size == (other["width"], other["height"])


def test_changed_image_raises_through_worker_processes(clothing_rows):
    from torch.utils.data import DataLoader

    row = next(r for r in clothing_rows if r["split"] == "train")
    Path(urlparse(row["uri"]).path).write_bytes(b"not the image")
    ds = dataset(clothing_rows, "train", read_uri, transform=to_small_tensor)
    batches = iter(DataLoader(ds, batch_size=2, num_workers=2))
    message = ""
    try:
        list(batches)
    except BlobIntegrityError as exc:
        message = str(exc)
        # torch's re-raise leaves the traceback in a reference cycle with the iterator;
        # breaking it lets the workers stop now instead of at a later garbage collection
        exc.__traceback__ = None
    del batches
    assert Path(urlparse(row["uri"]).path).name in message


def test_rows_without_class_are_refused(clothing_rows):
    clothing_rows[3]["label"] = {"boxes": []}
    with pytest.raises(DataopsError, match=clothing_rows[3]["sha256"]):
        class_names(clothing_rows)


def test_export_folder_layout_links_then_skips(clothing_rows, tmp_path):
    out = tmp_path / "export"
    counts = export_folder(clothing_rows, out, lambda r: Path(urlparse(r["uri"]).path))
    assert counts.linked == len(clothing_rows)
    for row in clothing_rows:
        target = out / row["split"] / row["label"]["class"] / f"{row['sha256']}.jpg"
        assert hashlib.sha256(target.read_bytes()).hexdigest() == row["sha256"]
        assert target.stat().st_ino == Path(urlparse(row["uri"]).path).stat().st_ino
    files = sorted(p.relative_to(out) for p in out.rglob("*.jpg"))
    assert len(files) == len(clothing_rows)
    assert {p.name for p in out.iterdir() if p.is_file()} == {
        ".dataops-export",
        "classes.txt",
        "index.jsonl",
    }
    again = export_folder(clothing_rows, out, lambda r: Path(urlparse(r["uri"]).path))
    assert again.skipped == len(clothing_rows)
    assert again.linked == again.copied == again.written == 0


def test_export_folder_copies_when_links_fail(clothing_rows, tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("os.link", no_links)
    counts = export_folder(clothing_rows, tmp_path / "x", lambda r: Path(urlparse(r["uri"]).path))
    assert counts.copied == len(clothing_rows)
    row = clothing_rows[0]
    target = tmp_path / "x" / row["split"] / row["label"]["class"] / f"{row['sha256']}.jpg"
    assert target.read_bytes() == Path(urlparse(row["uri"]).path).read_bytes()
    assert not list((tmp_path / "x").rglob(".tmp-*"))


def test_export_folder_from_bytes_and_refuses_changed_images(clothing_rows, tmp_path):
    counts = export_folder(clothing_rows, tmp_path / "b", read_uri)
    assert counts.written == len(clothing_rows)
    row = clothing_rows[0]
    with pytest.raises(BlobIntegrityError, match=row["sha256"]):
        export_folder([row], tmp_path / "c", lambda r: b"tampered")
    assert not list((tmp_path / "c").rglob("*.jpg"))


def test_export_folder_refuses_unsafe_class_names(clothing_rows, tmp_path):
    clothing_rows[0]["label"] = {"class": "../escape"}
    with pytest.raises(DataopsError, match="cannot be a folder name"):
        export_folder(clothing_rows, tmp_path / "d", read_uri)


def box_rows():
    rows = []
    for i, boxes in enumerate(
        [
            [{"class": "person", "x": 0.1, "y": 0.2, "w": 0.5, "h": 0.25}],
            [
                {"class": "helmet", "x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0},
                {"class": "person", "x": 0.5, "y": 0.5, "w": 0.25, "h": 0.5},
            ],
            [],
        ]
    ):
        sha = hashlib.sha256(bytes([i])).hexdigest()
        rows.append(
            {
                "sha256": sha,
                "blob_key": f"blobs/{sha}",
                "uri": f"s3://bucket/site/IMG_{i}.JPG",
                "split": "train" if i != 1 else "val",
                "label_version_id": i,
                "label": {"boxes": boxes},
                "guideline_version": None,
                "dup_group_id": None,
                "width": 640,
                "height": 480,
            }
        )
    return rows


def test_coco_boxes_are_absolute_pixels():
    rows = box_rows()
    coco = coco_dataset(rows)
    assert coco["categories"] == [{"id": 1, "name": "helmet"}, {"id": 2, "name": "person"}]
    by_sha = {img["sha256"]: img for img in coco["images"]}
    first = by_sha[rows[0]["sha256"]]
    assert first["file_name"] == f"{rows[0]['sha256']}.jpg"
    assert (first["width"], first["height"]) == (640, 480)
    (ann,) = [a for a in coco["annotations"] if a["image_id"] == first["id"]]
    assert ann["bbox"] == pytest.approx([64.0, 96.0, 320.0, 120.0])
    assert ann["area"] == pytest.approx(320.0 * 120.0)
    assert ann["category_id"] == 2
    assert len(coco["annotations"]) == 3
    assert len({a["id"] for a in coco["annotations"]}) == 3


def test_coco_ids_agree_across_splits():
    rows = box_rows()
    whole = coco_dataset(rows)
    parts = [coco_dataset(rows, split) for split in ("train", "val")]
    assert [p["categories"] for p in parts] == [whole["categories"]] * 2
    assert sorted((img["id"], img["sha256"]) for p in parts for img in p["images"]) == sorted(
        (img["id"], img["sha256"]) for img in whole["images"]
    )
    merged = sorted((a for p in parts for a in p["annotations"]), key=lambda a: a["id"])
    assert merged == whole["annotations"]


@pytest.mark.parametrize(
    "box",
    [
        {"x": 0.1, "y": 0.1, "w": 0.1, "h": 0.1},
        {"label": "a", "x": 0.1, "y": 0.1, "w": 0.1, "h": 0.1},
        {"class": "a", "x": 0.9, "y": 0.1, "w": 0.2, "h": 0.1},
        {"class": "a", "x": -0.1, "y": 0.1, "w": 0.2, "h": 0.1},
        {"class": "a", "x": "0.1", "y": 0.1, "w": 0.2, "h": 0.1},
        {"class": "a", "x": 10, "y": 20, "w": 30, "h": 40},
    ],
)
def test_coco_refuses_boxes_that_are_not_relative(box):
    rows = box_rows()
    rows[0]["label"] = {"boxes": [box]}
    with pytest.raises(DataopsError, match=rows[0]["sha256"]):
        coco_dataset(rows)


def test_export_coco_writes_images_and_one_file_per_split(tmp_path):
    rows = box_rows()
    blobs = {row["sha256"]: bytes([i]) for i, row in enumerate(rows)}
    counts = export_coco(rows, tmp_path / "coco", lambda r: blobs[r["sha256"]])
    assert counts.written == 3
    annotations = tmp_path / "coco" / "annotations"
    assert sorted(p.name for p in annotations.iterdir()) == ["train.json", "val.json"]
    val = json.loads((annotations / "val.json").read_text())
    (image,) = val["images"]
    assert image["file_name"] == f"val/{rows[1]['sha256']}.jpg"
    assert (tmp_path / "coco" / "images" / image["file_name"]).read_bytes() == bytes([1])
    assert len(val["annotations"]) == 2


@pytest.mark.parametrize(
    ("ref", "is_path"),
    [
        ("helmets-v3", False),
        ("helmets.v3", False),
        ("sha256:" + "a" * 64, False),
        ("a" * 12, False),
        ("./helmets.jsonl", True),
        ("helmets.jsonl", True),
        ("/mnt/data/manifests/" + "a" * 64 + "/body.jsonl", True),
        (Path("relative-body"), True),
    ],
)
def test_torch_dataset_tells_manifest_files_from_names(ref, is_path):
    from dataops.manifests.dataset import is_manifest_path

    assert is_manifest_path(ref) is is_path
