"""herd-api's side of the web console (issue #18) against a real ZooKeeper: the page and
its modules are served to anyone (they hold no data) and nothing outside them is; the
pinned npm packages are served from node_modules; `GET /whoami` names the token's role;
a browser's WebSocket is identified by the token it offers as a subprotocol. (The page
itself, in a real browser: tests/e2e/test_web_console.py.)"""

from __future__ import annotations

import base64
from pathlib import Path

from store.client import Store
from tests.integration.test_api import api_server


async def test_the_page_and_its_modules_are_public_and_nothing_else_is(
        zk_hosts: str, zk_root: str, tmp_path: Path, store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        page = await api.client.get("/ui/")
        assert page.status == 200 and '/ui/app/main.js' in await page.text()
        module = await api.client.get("/ui/app/main.js")
        assert module.status == 200 and "javascript" in module.content_type
        xterm = await api.client.get("/ui/vendor/xterm/lib/xterm.mjs")
        assert xterm.status == 200  # installed by `npm ci` (scripts/setup.sh)
        for outside in ("/ui/app/../serve.py", "/ui/app/%2e%2e/serve.py",
                        "/ui/vendor/xterm/../../package-lock.json"):
            assert (await api.client.get(outside)).status in (403, 404), outside
        assert (await api.client.get("/api/v1/vm")).status == 401  # the API still is not


async def test_whoami_names_the_tokens_role(zk_hosts: str, zk_root: str, tmp_path: Path,
                                           store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        status, me = await api.get("/whoami")
        assert status == 200 and me == {"name": "file:test", "role": "admin", "source": "file"}
        assert (await api.get("/whoami", headers={}))[0] == 401


async def test_a_websocket_is_identified_by_the_token_it_offers_as_a_subprotocol(
        zk_hosts: str, zk_root: str, tmp_path: Path, store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        def handshake(token: str) -> dict[str, str]:
            b64 = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
            return {"Connection": "Upgrade", "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Protocol": f"herd.v1, base64url.bearer.herd.{b64}"}
        known = await api.raw("GET", "/vm/nosuch/console", headers=handshake(api.token))
        assert known.status == 404  # past authentication: the VM is what is missing
        for bad in ("wrong", "!!"):
            refused = await api.raw("GET", "/vm/nosuch/console", headers=handshake(bad))
            assert refused.status == 401
