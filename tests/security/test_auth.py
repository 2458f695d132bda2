"""API tokens: random, stored hashed, shown once, expiring, revocable, and never logged."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dataops.auth import service
from dataops.auth.errors import InvalidUser, Unauthenticated
from dataops.db import get_engine, session_scope, utcnow
from tests.support.api import bearer
from tests.support.cli import run_cli, run_json

TOKEN_RE = re.compile(r"^dok_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def _secret(token: str) -> str:
    return token.split("_", 2)[2]


def _dump(*tables: str) -> str:
    with get_engine().connect() as conn:
        rows = [r for t in tables for r in conn.execute(text(f"SELECT * FROM {t}")).all()]
    return "\n".join(repr(tuple(r)) for r in rows)


def test_token_format_and_storage(api: TestClient, make_user: Any) -> None:
    token = make_user("scientist")
    assert TOKEN_RE.match(token)
    assert token != make_user("scientist")
    stored = _dump("api_tokens")
    assert _secret(token) not in stored
    with get_engine().connect() as conn:
        salt, digest = conn.execute(text("SELECT salt, secret_hash FROM api_tokens")).first()  # type: ignore[misc]
    assert len(salt) == 32
    assert len(digest) == 64


def test_valid_token_identifies_the_user(api: TestClient, make_user: Any) -> None:
    token = make_user("vendor", vendor="acme", name="acme-bot")
    me = api.get("/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "name": "acme-bot",
        "role": "vendor",
        "vendor": "acme",
        "disabled": False,
        "created_at": "",
    }
    with session_scope() as session:
        (row,) = service.list_tokens(session)
        assert row.last_used_at is not None


BAD_HEADERS = [
    None,
    "Bearer",
    "Basic YWRtaW46YWRtaW4=",
    "Bearer not-a-token",
    "Bearer dok_000000000000_" + "A" * 43,
    "Bearer dok_' OR 1=1 --_" + "A" * 43,
    "Bearer dok_abc\x00def",
]


def test_bad_credentials_are_401(api: TestClient, make_user: Any) -> None:
    make_user("admin")
    for header in BAD_HEADERS:
        headers = {} if header is None else {"Authorization": header}
        response = api.get("/v1/auth/me", headers=headers)
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"


def test_right_prefix_wrong_secret_is_401(api: TestClient, make_user: Any) -> None:
    token = make_user("admin")
    prefix = token.split("_")[1]
    forged = f"dok_{prefix}_" + ("B" if token[-1] != "B" else "C") * 43
    assert api.get("/v1/auth/me", headers=bearer(forged)).status_code == 401
    assert api.get("/v1/auth/me", headers=bearer(token)).status_code == 200


def test_expired_token_is_401(api: TestClient, make_user: Any) -> None:
    token = make_user("admin")
    assert api.get("/v1/auth/me", headers=bearer(token)).status_code == 200
    with session_scope() as session:
        (row,) = service.list_tokens(session)
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert api.get("/v1/auth/me", headers=bearer(token)).status_code == 401
    with session_scope() as session, pytest.raises(Unauthenticated):
        service.authenticate(session, token)


def test_disabled_user_is_401(api: TestClient, make_user: Any) -> None:
    token = make_user("scientist", name="leaver")
    with session_scope() as session:
        service.get_user(session, "leaver").disabled = True
    assert api.get("/v1/auth/me", headers=bearer(token)).status_code == 401


def test_revoke_over_http(api: TestClient, make_user: Any) -> None:
    admin = make_user("admin")
    mine = make_user("auditor", name="auditor-a")
    theirs = make_user("auditor", name="auditor-b")
    listed = api.get("/v1/tokens", headers=bearer(mine)).json()["tokens"]
    assert [t["user"] for t in listed] == ["auditor-a"]
    assert all("token" not in t for t in listed)
    their_prefix = theirs.split("_")[1]
    assert api.delete(f"/v1/tokens/{their_prefix}", headers=bearer(mine)).status_code == 404
    my_prefix = mine.split("_")[1]
    revoked = api.delete(f"/v1/tokens/{my_prefix}", headers=bearer(mine))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    assert api.get("/v1/auth/me", headers=bearer(mine)).status_code == 401
    assert api.delete(f"/v1/tokens/dok_{their_prefix}", headers=bearer(admin)).status_code == 200
    assert api.get("/v1/auth/me", headers=bearer(theirs)).status_code == 401
    again = api.delete(f"/v1/tokens/{their_prefix}", headers=bearer(admin))
    assert again.status_code == 200
    # A whole token in the path is refused without being echoed back.
    echoed = api.delete(f"/v1/tokens/{admin}", headers=bearer(admin))
    assert echoed.status_code == 422
    assert _secret(admin) not in echoed.text


def test_admin_creates_users_and_tokens_and_events_name_the_actor(
    api: TestClient, make_user: Any
) -> None:
    admin = make_user("admin", name="root-admin")
    created = api.post(
        "/v1/users",
        json={"name": "acme-bot", "role": "vendor", "vendor": "nope"},
        headers=bearer(admin),
    )
    assert created.status_code == 400
    assert "no vendor" in created.json()["error"]["message"]
    created = api.post(
        "/v1/users", json={"name": "sci", "role": "scientist"}, headers=bearer(admin)
    )
    assert created.status_code == 201, created.text
    duplicate = api.post(
        "/v1/users", json={"name": "sci", "role": "auditor"}, headers=bearer(admin)
    )
    assert duplicate.status_code == 409
    minted = api.post(
        "/v1/tokens",
        json={"user": "sci", "name": "notebook", "expires_in_days": 7},
        headers=bearer(admin),
    )
    assert minted.status_code == 201
    token = minted.json()["token"]
    assert TOKEN_RE.match(token)
    assert api.get("/v1/auth/me", headers=bearer(token)).json()["name"] == "sci"
    listed = api.get("/v1/tokens", params={"user": "sci"}, headers=bearer(admin)).json()["tokens"]
    assert [t["name"] for t in listed] == ["notebook"]
    with get_engine().connect() as conn:
        events = conn.execute(
            text(
                "SELECT actor, action, entity_id FROM audit_events WHERE actor = 'user:root-admin'"
            )
        ).all()
    assert {(a, e) for _, a, e in events} >= {
        ("user.created", "sci"),
        ("token.created", token.split("_")[1]),
    }


def test_tokens_never_reach_logs_errors_or_events(
    api: TestClient, make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = make_user("admin")
    minted = api.post("/v1/tokens", json={"user": _user_of(admin)}, headers=bearer(admin)).json()
    secrets = [_secret(admin), _secret(minted["token"])]
    bodies = []
    for token in (admin, minted["token"]):
        prefix = token.split("_")[1]
        bad = f"dok_{prefix}_" + token[-43:][::-1]
        for headers in (bearer(token), bearer(bad), bearer(token + "x")):
            for path in ("/v1/auth/me", "/v1/images?limit=abc", "/v1/nowhere", "/v1/tokens"):
                bodies.append(api.get(path, headers=headers).text)
        bodies.append(api.delete(f"/v1/tokens/{prefix}", headers=bearer(token)).text)
    dump = _dump("audit_events", "api_tokens", "users") + "\n".join(bodies) + caplog.text
    leaked = [s for s in secrets if s in dump or s[:20] in dump]
    assert not leaked


def _user_of(token: str) -> str:
    with session_scope() as session:
        row = service.get_token(session, token.split("_")[1])
        return service.describe_token(session, row).user


def test_non_admins_cannot_mint_tokens(api: TestClient, make_user: Any) -> None:
    scientist = make_user("scientist", name="sci-1")
    response = api.post("/v1/tokens", json={"user": "sci-1"}, headers=bearer(scientist))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("text_value", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("never", None),
    ],
)
def test_parse_duration(text_value: str, expected: timedelta | None) -> None:
    assert service.parse_duration(text_value) == expected


@pytest.mark.parametrize("bad", ["0d", "30", "d", "-1d", "1y", "1e9d", ""])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(InvalidUser):
        service.parse_duration(bad)


def test_cli_users_and_tokens(catalog: str) -> None:
    created = run_json("users", "create", "ops-1", "--role", "labeling_ops")
    assert (created["name"], created["role"], created["vendor"]) == ("ops-1", "labeling_ops", None)
    bad = run_cli("users", "create", "v-1", "--role", "vendor", check=False)
    assert bad.returncode == 2
    assert "--vendor" in bad.stderr

    shown = run_cli("tokens", "create", "ops-1", "--expires", "12h", "--name", "laptop")
    token = shown.stdout.strip()
    assert TOKEN_RE.match(token), shown.stdout
    assert "not shown again" in shown.stderr
    assert _secret(token) not in shown.stderr

    listed = run_json("tokens", "list")
    assert [(t["prefix"], t["user"], t["name"]) for t in listed["tokens"]] == [
        (token.split("_")[1], "ops-1", "laptop")
    ]
    assert _secret(token) not in json.dumps(listed)
    assert run_json("users", "list")["users"][0]["name"] == "ops-1"

    with session_scope() as session:
        assert service.authenticate(session, token).name == "ops-1"
    revoked = run_json("tokens", "revoke", token.split("_")[1])
    assert revoked["revoked_at"]
    with session_scope() as session, pytest.raises(Unauthenticated):
        service.authenticate(session, token)
    whole = run_cli("tokens", "revoke", token, check=False)
    assert whole.returncode == 2
    assert _secret(token) not in whole.stderr
