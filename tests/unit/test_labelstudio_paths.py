"""Label Studio's image paths, and the PREFIX=ROOT map that finds them in the catalog."""

from __future__ import annotations

import pytest

from dataops.errors import DataopsError
from dataops.labeling.path_map import labelstudio_path, mapped_uris, parse_path_map


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/data/upload/3/ab12-photo.jpg", "/data/upload/3/ab12-photo.jpg"),
        ("/data/local-files/?d=photos%2Fa%20b.jpg", "/data/local-files/photos/a b.jpg"),
        ("/data/local-files/?d=/abs/x.jpg", "/data/local-files/abs/x.jpg"),
        ("http://ls:8080/data/upload/3/x.jpg", "/data/upload/3/x.jpg"),
        ("https://ls.example/data/local-files/?d=a%2Fb.png", "/data/local-files/a/b.png"),
        ("https://cdn.example/img/x.jpg", "https://cdn.example/img/x.jpg"),
        ("s3://bucket/key.jpg", "s3://bucket/key.jpg"),
    ],
)
def test_labelstudio_forms_read_as_one_path(uri: str, path: str) -> None:
    assert labelstudio_path(uri) == path


def test_the_map_replaces_the_prefix_and_keeps_the_written_forms() -> None:
    pairs = parse_path_map(["/data/local-files/=/mnt/images/", "s3://bucket/=/mnt/bucket/"])
    assert mapped_uris("/data/local-files/?d=a%2Fb.jpg", pairs) == [
        "/data/local-files/?d=a%2Fb.jpg",
        "/data/local-files/a/b.jpg",
        "/mnt/images/a/b.jpg",
    ]
    assert mapped_uris("s3://bucket/k/x.jpg", pairs) == [
        "s3://bucket/k/x.jpg",
        "/mnt/bucket/k/x.jpg",
    ]
    assert mapped_uris("/elsewhere/x.jpg", pairs) == ["/elsewhere/x.jpg"]


@pytest.mark.parametrize("spec", ["no-equals", "=/root", "/prefix=", " = "])
def test_a_bad_map_entry_says_how_to_write_one(spec: str) -> None:
    with pytest.raises(DataopsError, match="PREFIX=ROOT"):
        parse_path_map([spec])
