"""API shapes for users and tokens. A token's secret appears only in `TokenCreated`, once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "scientist", "labeling_ops", "vendor", "auditor"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "acme-bot", "role": "vendor", "vendor": "acme"}]},
    )

    name: str = Field(pattern=NAME_PATTERN, description="Unique login name.")
    role: Role = Field(description="What the user may do; see the roles table in the README.")
    vendor: str | None = Field(
        default=None,
        max_length=128,
        description="Required for (and only for) the `vendor` role: the vendor it acts for.",
    )


class UserOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "name": "acme-bot",
                    "role": "vendor",
                    "vendor": "acme",
                    "disabled": False,
                    "created_at": "2026-11-02T09:30:00Z",
                }
            ]
        }
    )

    id: int
    name: str
    role: Role
    vendor: str | None
    disabled: bool
    created_at: datetime


class UserList(BaseModel):
    users: list[UserOut]


# How long a new token lives unless asked otherwise, from the CLI and over HTTP alike.
DEFAULT_TOKEN_DAYS = 30


class TokenCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"user": "acme-bot", "name": "ci", "expires_in_days": 30}]},
    )

    user: str = Field(pattern=NAME_PATTERN, description="Whose token this is.")
    name: str | None = Field(
        default=None, max_length=128, description="A label to recognise the token by later."
    )
    expires_in_days: int | None = Field(
        default=DEFAULT_TOKEN_DAYS,
        ge=1,
        le=3650,
        description="Lifetime in days; null for a token that never expires.",
    )


class TokenOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prefix": "3f9a0c1b7d2e",
                    "user": "acme-bot",
                    "name": "ci",
                    "created_at": "2026-11-02T09:30:00Z",
                    "expires_at": "2026-12-02T09:30:00Z",
                    "last_used_at": None,
                    "revoked_at": None,
                }
            ]
        }
    )

    prefix: str = Field(
        description="Public part of the token; identifies it in lists and revocation."
    )
    user: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(
        description="The bearer token. Shown only in this response: store it now.",
        examples=["dok_3f9a0c1b7d2e_Jq0f3v9mW2xK8rTzP4sLbN6yHcA1eD5gU7iO0pQ2wRk"],
    )


class TokenList(BaseModel):
    tokens: list[TokenOut]
