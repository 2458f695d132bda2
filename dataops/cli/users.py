"""`dataops users ...` and `dataops tokens ...`: who may use the HTTP API, and their tokens."""

from __future__ import annotations

import typer

from dataops.cli.jobrun import _actor
from dataops.cli.output import console, emit, err_console, table

users_app = typer.Typer(help="People and service accounts of the HTTP API.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens: shown once when created, stored only as a salted hash.",
    no_args_is_help=True,
)


@users_app.command("create")
def create_user(
    name: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(
        ..., "--role", help="admin, scientist, labeling_ops, vendor or auditor."
    ),
    vendor: str | None = typer.Option(None, "--vendor", help="The vendor a vendor user acts for."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a user with one role."""
    from dataops.auth import service
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        user = service.create_user(session, name, role, vendor=vendor, actor=_actor())
        data = service.describe_user(session, user).model_dump(mode="json")
    emit(data, as_json, lambda: console.print(f"created {data['role']} user {data['name']}"))


@users_app.command("list")
def list_users(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every user with role and vendor."""
    from dataops.auth import service
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        users = [
            service.describe_user(session, u).model_dump(mode="json")
            for u in service.list_users(session)
        ]
    emit(
        {"users": users},
        as_json,
        lambda: table(
            "users",
            ["name", "role", "vendor", "disabled", "created"],
            [
                [u["name"], u["role"], u["vendor"], u["disabled"], u["created_at"][:19]]
                for u in users
            ],
        ),
    )


@tokens_app.command("create")
def create_token(
    user: str = typer.Argument(..., help="Whose token."),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime: 90m, 12h, 30d, 2w or never (default: 30 days)."
    ),
    name: str | None = typer.Option(None, "--name", help="A label to recognise it by."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Mint an API token and print it once: it cannot be shown again."""
    from datetime import timedelta

    from dataops.auth import service
    from dataops.auth.schemas import DEFAULT_TOKEN_DAYS
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    lifetime = (
        timedelta(days=DEFAULT_TOKEN_DAYS) if expires is None else service.parse_duration(expires)
    )
    with session_scope() as session:
        new = service.create_token(session, user, expires_in=lifetime, name=name, actor=_actor())
        data = service.describe_token(session, new.row).model_dump(mode="json")
    data["token"] = new.token

    def render() -> None:
        err_console.print(
            f"token {data['prefix']} for {user}, expires {data['expires_at'] or 'never'}; "
            "store it now, it is not shown again:"
        )
        console.print(new.token, highlight=False, soft_wrap=True)

    emit(data, as_json, render)


@tokens_app.command("list")
def list_tokens(
    user: str | None = typer.Option(None, "--user", help="Only this user's tokens."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Tokens with owner, expiry and last use; never the secrets."""
    from dataops.auth import service
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        user_id = service.get_user(session, user).id if user else None
        tokens = [
            service.describe_token(session, t).model_dump(mode="json")
            for t in service.list_tokens(session, user_id=user_id)
        ]

    def state(t: dict[str, str | None]) -> str:
        return "revoked" if t["revoked_at"] else "active"

    emit(
        {"tokens": tokens},
        as_json,
        lambda: table(
            "tokens",
            ["prefix", "user", "name", "state", "expires", "last used"],
            [
                [t["prefix"], t["user"], t["name"], state(t), t["expires_at"], t["last_used_at"]]
                for t in tokens
            ],
        ),
    )


@tokens_app.command("revoke")
def revoke_token(
    prefix: str = typer.Argument(..., help="The token's prefix, as `tokens list` shows it."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Revoke a token; requests with it fail from now on."""
    from dataops.auth import service
    from dataops.db import session_scope
    from dataops.migrate import ensure_ready

    ensure_ready()
    with session_scope() as session:
        row = service.revoke_token(session, prefix, actor=_actor())
        data = service.describe_token(session, row).model_dump(mode="json")
    emit(data, as_json, lambda: console.print(f"revoked token {data['prefix']} of {data['user']}"))
