"""Routes of the web console: `/ui/` (the page), `/ui/app/...` (its modules and style)
and `/ui/vendor/<name>/...` (one pinned npm package each, `VENDORED`). A package that
`npm ci` did not install is left out and logged: the page says which part is missing.
Called by `server.app.make_app`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
APP = HERE / "app"
MODULES = HERE / "node_modules"
# URL name -> npm package (package.json pins each, package-lock.json their tree).
VENDORED = {"xterm": "@xterm/xterm", "addon-fit": "@xterm/addon-fit", "novnc": "@novnc/novnc",
            "js-yaml": "js-yaml", "diff": "diff"}
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidated: an upgrade is seen at once


async def page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(APP / "index.html", headers=NO_CACHE)


async def to_page(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


def add_ui(app: web.Application) -> None:
    app.router.add_get("/ui", to_page)
    app.router.add_get("/ui/", page)
    app.router.add_static("/ui/app/", APP, append_version=False)
    for name, package in VENDORED.items():
        folder = MODULES / package
        if folder.is_dir():
            app.router.add_static(f"/ui/vendor/{name}/", folder)
        else:
            log.warning("web console: %s is not installed (run `npm ci` in %s); the page "
                        "works without what it gives", package, HERE)
