"""`GET /whoami`: the identity of the request's own token (name, role, where it comes
from). The web console asks it after sign-in, to offer only what that role may do.
Registered by `server.routes`.
"""

from __future__ import annotations

from aiohttp import web
from marshmallow import Schema, fields

from server.auth import IDENTITY
from server.http import json_response


class WhoAmI(Schema):
    name = fields.String(required=True)
    role = fields.String(required=True)
    source = fields.String(required=True)


async def whoami(request: web.Request) -> web.Response:
    identity = request[IDENTITY]
    return json_response({"name": identity.name, "role": identity.role.value,
                          "source": identity.source})
