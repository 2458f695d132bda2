"""Read a dataset folder with datumaro and print its items as JSON (run by .venv-datumaro).

    .venv-datumaro/bin/python tests/support/datumaro_read.py DIR FORMAT [OUT OUT_FORMAT]

With OUT, datumaro also writes the dataset in OUT_FORMAT (labels only, no images) to OUT.
Prints ``{"labels": [...], "items": [{"id", "subset", "image", "size", "boxes", "tags"}]}``;
boxes are ``[label, x, y, w, h]`` in pixels as datumaro reads them.
"""

from __future__ import annotations

import json
import sys


def main(path: str, fmt: str, out: str | None = None, out_fmt: str | None = None) -> None:
    import datumaro
    from datumaro.components.annotation import AnnotationType

    dataset = datumaro.Dataset.import_from(path, fmt)
    labels = [label.name for label in dataset.categories()[AnnotationType.label].items]
    items = []
    for item in dataset:
        boxes, tags = [], []
        for ann in item.annotations:
            if ann.type == AnnotationType.bbox:
                boxes.append([labels[ann.label], *map(float, ann.get_bbox())])
            elif ann.type == AnnotationType.label:
                tags.append(labels[ann.label])
        media = item.media
        items.append(
            {
                "id": item.id,
                "subset": item.subset,
                "image": getattr(media, "path", None),
                "size": list(media.size) if media is not None and media.size else None,
                "pixels": list(media.data.shape[:2]) if media is not None else None,
                "boxes": boxes,
                "tags": tags,
            }
        )
    if out and out_fmt:
        dataset.export(out, out_fmt, save_media=False)
    print(json.dumps({"version": datumaro.__version__, "labels": labels, "items": items}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
