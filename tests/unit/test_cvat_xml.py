"""CVAT for images 1.1 XML: what the parser turns into rows and what it refuses, and the
export's own document read back by it."""

from __future__ import annotations

import pytest

from dataops.labeling.errors import LabelFileError
from dataops.labeling.importers import AnnotatorRef
from dataops.labeling.importers_cvat import parse_cvat
from dataops.manifests.body import RowRecord
from dataops.manifests.formats_cvat import split_xml
from dataops.manifests.formats_voc import annotation_xml, pixel

WHO = AnnotatorRef(name="alice")
SHA = "ab" * 32


def _doc(*images: str) -> str:
    return (
        '<?xml version="1.0"?><annotations><version>1.1</version><meta/>'
        + "".join(images)
        + "</annotations>"
    )


def _image(body: str, name: str = f"{SHA}.jpg", size: str = 'width="200" height="100"') -> str:
    return f'<image id="0" name="{name}" {size}>{body}</image>'


def test_boxes_are_relative_to_the_image_and_clamped() -> None:
    parsed = parse_cvat(
        _doc(_image('<box label="cat" xtl="20" ytl="10" xbr="220" ybr="60" occluded="0"/>')),
        annotator=WHO,
    )
    assert parsed.errors == []
    [row] = parsed.rows
    assert row.image_sha256 == SHA and row.image_uri is None and row.annotator == WHO
    assert row.payload == {"boxes": [{"class": "cat", "x": 0.1, "y": 0.1, "w": 0.9, "h": 0.5}]}
    assert parsed.sizes[row.row] == (200, 100)


def test_names_that_are_not_sha256_are_looked_up_by_name() -> None:
    parsed = parse_cvat(_doc(_image('<tag label="dog"/>', name="photos/a.jpg")), annotator=WHO)
    [row] = parsed.rows
    assert (row.image_sha256, row.image_uri, row.payload) == (
        None,
        "photos/a.jpg",
        {"class": "dog"},
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<polygon label="cat" points="1,1;5,1;5,5"/>', "polygon is not imported"),
        ('<box label="cat" xtl="1" ytl="1" xbr="5" ybr="5" rotation="30"/>', "rotated box"),
        ('<box label="cat" xtl="9" ytl="1" xbr="5" ybr="5"/>', "must not be left of"),
        ('<box label="cat" xtl="x" ytl="1" xbr="5" ybr="5"/>', "must be a number"),
        ('<tag label="cat"/><tag label="dog"/>', "one class tag"),
        ('<tag label="cat"/><box label="cat" xtl="1" ytl="1" xbr="5" ybr="5"/>', "tags and boxes"),
    ],
)
def test_shapes_dataops_cannot_store_are_row_errors(body: str, message: str) -> None:
    parsed = parse_cvat(_doc(_image('<tag label="ok"/>'), _image(body)), annotator=WHO)
    assert len(parsed.rows) == 1
    [error] = parsed.errors
    assert error.row == 2 and message in error.message


def test_unlabeled_images_are_skipped_and_bad_sizes_refused() -> None:
    parsed = parse_cvat(
        _doc(_image(""), _image('<tag label="cat"/>', size='width="0" height="5"')),
        annotator=WHO,
    )
    assert parsed.skipped == 1 and parsed.rows == []
    assert [e.field for e in parsed.errors] == ["width"]


def test_guideline_classes_are_checked() -> None:
    parsed = parse_cvat(
        _doc(_image('<tag label="Cat"/>'), _image('<tag label="cow"/>')),
        annotator=WHO,
        kind="classification",
        classes=["cat", "dog"],
    )
    assert [r.payload for r in parsed.rows] == [{"class": "cat"}]
    assert len(parsed.errors) == 1 and parsed.errors[0].row == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<annotations>", "not an XML document"),
        ("<annotations><version>1.1</version></annotations>", "<image> elements"),
        ('<!DOCTYPE a [<!ENTITY x "y">]><annotations/>', "DOCTYPE"),
        ('<annotations><track id="0" label="a"/></annotations>', "CVAT for video"),
    ],
)
def test_files_that_are_not_cvat_for_images_are_refused(text: str, message: str) -> None:
    with pytest.raises(LabelFileError, match=message):
        parse_cvat(text, annotator=WHO)


def _row(label: dict[str, object]) -> RowRecord:
    row: dict[str, object] = {
        "sha256": SHA,
        "uri": "file:///x/a.JPG",
        "blob_key": "",
        "split": "train",
        "width": 640,
        "height": 480,
        "label": label,
    }
    return row  # type: ignore[return-value]


def test_export_documents_read_back_by_the_importer() -> None:
    boxes = [{"class": "cat", "x": 0.1, "y": 0.25, "w": 0.5, "h": 0.5}]
    text = split_xml([_row({"boxes": boxes})], "train", ["cat", "dog"]).decode()
    [row] = parse_cvat(text, annotator=WHO).rows
    assert row.image_sha256 == SHA
    [box] = row.payload["boxes"]
    assert [box[k] for k in "xywh"] == pytest.approx([0.1, 0.25, 0.5, 0.5])
    voc = annotation_xml(_row({"boxes": boxes}), f"{SHA}.jpg").decode()
    assert "<xmin>64</xmin>" in voc and "<ymax>360</ymax>" in voc
    assert "<width>640</width>" in voc and "<name>cat</name>" in voc


def test_pixel_text_is_short() -> None:
    assert (pixel(64.00000000000001), pixel(12.3456), pixel(0.0)) == ("64", "12.346", "0")
