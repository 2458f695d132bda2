"""`dataops labels issues`: labels the model's out-of-sample probabilities say are wrong."""

from __future__ import annotations

from typing import Any

import typer

from dataops.cli.output import console, emit, table


def labels_issues(
    task: str | None = typer.Option(None, "--task", help="Labeling task (default: default)."),
    model: str | None = typer.Option(
        None, "--model", help="Model whose embeddings feed the k-fold head (NAME[:VERSION])."
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help="kfold (default): a head on the model's embeddings, each label held out; "
        "imported: --probabilities declared --out-of-sample.",
    ),
    folds: int | None = typer.Option(None, "--folds", help="Folds of the k-fold head (default 5)."),
    seed: int | None = typer.Option(None, "--seed", help="Fold assignment seed (default 0)."),
    probabilities: str | None = typer.Option(
        None, "--probabilities", help="CSV: sha256, then one probability column per class."
    ),
    out_of_sample: bool = typer.Option(
        False, "--out-of-sample", help="Declare imported probabilities out-of-sample."
    ),
    run: int | None = typer.Option(
        None, "--run", help="Show a stored run instead of starting a new one."
    ),
    show_all: bool = typer.Option(False, "--all", help="Every scored label, not only issues."),
    limit: int | None = typer.Option(None, "--limit", help="At most this many rows (default 100)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Score every live accepted or submitted class label; list the suspect ones, worst first.

    Starts a label-quality job (out-of-sample probabilities, then cleanlab's confident
    learning) unless --run names a stored run. Box labels are not judged.
    """
    from dataops.cli.jobrun import run_job
    from dataops.db import session_scope
    from dataops.labeling.schemas import parse_request
    from dataops.migrate import ensure_ready
    from dataops.quality import service
    from dataops.quality.run import check_request
    from dataops.quality.schemas import IssuesRequest, LabelQualityRequest

    ensure_ready()
    if run is None:
        given = {
            "task": task,
            "model": model,
            "source": source,
            "folds": folds,
            "seed": seed,
            "probabilities": probabilities,
            "out_of_sample": out_of_sample or None,
        }
        request = parse_request(
            LabelQualityRequest, {k: v for k, v in given.items() if v is not None}
        )
        check_request(request)
        job = run_job(
            "label_quality",
            request.model_dump(exclude_defaults=True),
            description=f"label quality {request.task}",
        )
        run = int(job.result["id"])
    read = parse_request(
        IssuesRequest,
        {
            "run": run,
            "issues_only": not show_all,
            **({"limit": limit} if limit is not None else {}),
        },
    )
    with session_scope() as session:
        out: dict[str, Any] = service.list_issues(session, read).model_dump(mode="json")

    def render() -> None:
        r = out["run"]
        console.print(
            f"run {r['id']} ({r['source']}, {r['model'] or 'imported'}): {r['issues']} of "
            f"{r['labels']} labels flagged in task {r['task']}",
            highlight=False,
        )
        table(
            "estimated label-error rate per class",
            ["class", "labels", "issues", "rate"],
            [
                [c, v["labels"], v["issues"], f"{v['error_rate']:.1%}"]
                for c, v in r["per_class"].items()
            ],
        )
        table(
            f"{len(out['labels'])} labels, most suspect first",
            ["label", "image", "given", "suggested", "quality", "issue"],
            [
                [
                    q["label_version_id"],
                    q["sha256"][:12],
                    q["given_class"],
                    q["suggested_class"],
                    f"{q['quality']:.3f}",
                    "yes" if q["is_issue"] else "",
                ]
                for q in out["labels"]
            ],
        )

    emit(out, as_json, render)
