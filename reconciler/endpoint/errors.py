"""The node endpoint's refusals: `{"error": message}` with the HTTP status, the message also
in the `X-Herd-Error` header (a WebSocket client keeps the headers of a refused handshake,
not its body; herd-api reads it there, `server.consoles.console`). Used by every handler
of `reconciler.endpoint`."""

from __future__ import annotations

import json

from aiohttp import web

ERROR_HEADER = "X-Herd-Error"


def refusal(status: int, message: str) -> web.HTTPException:
    error = web.HTTPException(text=json.dumps({"error": message}),
                              content_type="application/json",
                              headers={ERROR_HEADER: message.encode("ascii", "replace")
                                       .decode()[:300]})
    error.set_status(status)
    return error
