"""`dataops serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the API to the network."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs).

    Set DATAOPS_PUBLIC_URL to the address Label Studio's browsers use, so that signed image
    URLs point back here.
    """
    import uvicorn

    from dataops.migrate import ensure_ready

    ensure_ready()  # fail before binding when a shared database is not migrated
    uvicorn.run(
        "dataops.api:app",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,
        server_header=False,
    )
