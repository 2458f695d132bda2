"""Users and API tokens over HTTP. Creating users and tokens is for admins; anyone may see
and revoke their own tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from dataops.api.deps import CurrentUser, SessionDep, actor, require_roles
from dataops.api.errors import error_responses
from dataops.auth import service
from dataops.auth.models import User
from dataops.auth.schemas import (
    NAME_PATTERN,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    UserCreate,
    UserList,
    UserOut,
)

router = APIRouter(prefix="/v1", tags=["auth"])

Admin = Annotated[User, Depends(require_roles())]
TokenPrefix = Annotated[
    str,
    Path(
        pattern=r"^(dok_)?[0-9a-f]{12}$",
        description="The token's 12-character public prefix (never the whole token).",
    ),
]


@router.get(
    "/auth/me",
    response_model=UserOut,
    summary="Who am I",
    description="The user the bearer token belongs to, with role and vendor.",
    responses=error_responses(401),
)
def me(session: SessionDep, user: CurrentUser) -> UserOut:
    return service.describe_user(session, user)


@router.get(
    "/users",
    response_model=UserList,
    summary="List users",
    description="Every user with role and vendor (admins only).",
    responses=error_responses(401, 403),
)
def list_users(session: SessionDep, _admin: Admin) -> UserList:
    return UserList(users=[service.describe_user(session, u) for u in service.list_users(session)])


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    summary="Create a user",
    description="Vendor users must name their vendor; other roles must not (admins only).",
    responses=error_responses(400, 401, 403, 409, 422),
)
def create_user(session: SessionDep, admin: Admin, body: UserCreate) -> UserOut:
    user = service.create_user(
        session, body.name, body.role, vendor=body.vendor, actor=actor(admin)
    )
    return service.describe_user(session, user)


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreated,
    summary="Create an API token",
    description=(
        "Mint a bearer token for a user (admins only). The token is in this response only; "
        "the service keeps a salted hash of it."
    ),
    responses=error_responses(401, 403, 404, 422),
)
def create_token(session: SessionDep, admin: Admin, body: TokenCreate) -> TokenCreated:
    expires = None if body.expires_in_days is None else timedelta(days=body.expires_in_days)
    new = service.create_token(
        session, body.user, expires_in=expires, name=body.name, actor=actor(admin)
    )
    out = service.describe_token(session, new.row)
    return TokenCreated(**out.model_dump(), token=new.token)


@router.get(
    "/tokens",
    response_model=TokenList,
    summary="List API tokens",
    description="Your own tokens; admins see everyone's and may filter by user. Never the secrets.",
    responses=error_responses(401, 422),
)
def list_tokens(
    session: SessionDep,
    user: CurrentUser,
    owner: Annotated[
        str | None, Query(alias="user", pattern=NAME_PATTERN, description="Admins: whose tokens.")
    ] = None,
) -> TokenList:
    if user.role != "admin":
        user_id: int | None = user.id
    elif owner is not None:
        user_id = service.get_user(session, owner).id
    else:
        user_id = None
    rows = service.list_tokens(session, user_id=user_id)
    return TokenList(tokens=[service.describe_token(session, r) for r in rows])


@router.delete(
    "/tokens/{prefix}",
    response_model=TokenOut,
    summary="Revoke an API token",
    description="Revoke one of your tokens (admins: anyone's). Revoking twice is harmless.",
    responses=error_responses(401, 404, 422),
)
def revoke_token(session: SessionDep, user: CurrentUser, prefix: TokenPrefix) -> TokenOut:
    owner_id = None if user.role == "admin" else user.id
    row = service.revoke_token(session, prefix, actor=actor(user), owner_id=owner_id)
    return service.describe_token(session, row)
