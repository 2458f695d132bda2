"""`dataops serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import typer

# uvicorn's default (5 s) equals httpx's pool expiry: the server then closes idle connections
# at the moment a client picks one for its next request, and that request is reset. At 75 s
# (as nginx) httpx, browsers and most pools retire idle connections themselves, before reuse.
KEEP_ALIVE_SECONDS = 75


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the API to the network."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes."),
    log_level: str = typer.Option("info", "--log-level"),
    keep_alive: int = typer.Option(
        KEEP_ALIVE_SECONDS,
        "--keep-alive",
        min=1,
        help=(
            "Seconds an idle connection stays open. Keep it longer than clients' pool expiry "
            "(httpx: 5 s), so that clients, not the server, close idle connections."
        ),
    ),
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
        timeout_keep_alive=keep_alive,
        proxy_headers=True,
        server_header=False,
    )
