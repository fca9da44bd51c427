"""Schemas of the token requests of the API (`POST /token`): a token's name (a Herd name,
the znode it is stored under) and its role. Used by `server.tokens` (validation and the
OpenAPI document) and `ctl` (the `--role` choices come from `vocabulary.Role`).
"""

from __future__ import annotations

from marshmallow import RAISE

from schemas.common import Choice, HerdSchema
from schemas.names import Name
from vocabulary import Role


class TokenCreateRequest(HerdSchema):
    """`POST /token`: the new token's name and role (the secret is made by the server)."""

    class Meta:
        unknown = RAISE

    name = Name(required=True)
    role = Choice(Role, required=True)
