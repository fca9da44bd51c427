"""`GET /config` and `POST /config`: the cluster's defaults (`<root>/config`, validated by
`schemas.node.ClusterConfigSchema`): the selector, shutdownTimeout, fenceTimeout,
maintenance. Reading needs `viewer`, changing needs `admin` (`server.routes.ROLES`).

Both read and write ZooKeeper directly (the document is small and changed rarely), so a
write is seen by the next read on any server. A change names only the fields it sets;
the merged document is validated whole before anything is written (version-checked
read-modify-write). Called through the route table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from marshmallow import INCLUDE, Schema, ValidationError, fields

from schemas.node import ClusterConfigSchema
from server.access import reading, writing
from server.http import json_response, read_json
from store.client import Versioned
from store.codec import Doc

_SCHEMA = ClusterConfigSchema()


class ClusterConfigView(Schema):
    """The stored defaults and the resourceVersion of the document."""

    class Meta:
        unknown = INCLUDE

    resourceVersion = fields.String(required=True)


def _view(found: Versioned) -> dict[str, Any]:
    return {**found.doc, "resourceVersion": str(found.mzxid)}


async def get_config(request: web.Request) -> web.Response:
    c = reading(request)
    found = await asyncio.to_thread(c.store.get, c.store.paths.config)
    return json_response(_view(found))


def _changes(body: Any) -> Doc:
    """The fields the body sets, each validated; nothing else."""
    loaded = _SCHEMA.load(body, partial=True)
    return {key: loaded[key] for key in body}


async def set_config(request: web.Request) -> web.Response:
    c = writing(request)
    changes = _changes(await read_json(request))

    def merged(doc: Doc) -> Doc:
        new = {**doc, **changes}
        errors = _SCHEMA.validate(new)
        if errors:
            raise ValidationError(errors)
        return new

    written = await asyncio.to_thread(c.store.update, c.store.paths.config, merged)
    return json_response(_view(written))
