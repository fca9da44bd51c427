"""Seeing inside a guest on real QEMU hosts (issue #16), through herd-api only.

The guest (`console_guest_xml`) runs SeaBIOS with its output on the serial port, a boot
menu, and iPXE on a user-mode NIC, whose command line echoes what is typed. On the
3-host storage cluster (`storage_cluster`, shared with the storage modules):
- `vm log` has SeaBIOS's banner: virtlogd captured it from the guest's first byte;
- `herdctl vm console` in a pseudo-terminal sees output, sends keys (ESC opens the boot
  menu, "2" boots iPXE, Ctrl-B its shell, a typed `echo` comes back), and Ctrl-] leaves;
- one session at a time: a second is refused, `force` takes over (the first is told);
- the console follows a live migration (a note, then the same iPXE shell on the new
  host), and the console log goes along (the banner printed on the first host is in the
  log the new host serves);
- `herdctl vm vnc` relays a local port whose first bytes are the RFB handshake;
- consoles need an operator token (none: 401, viewer: 403), the log only a viewer's;
- `vm info`'s figures come from the node (CPU %, memory);
- the web console (issue #18, headless Chromium): its serial console shows the firmware
  and sends a key, its display (noVNC) connects.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import aiohttp
import pexpect
import pytest
from selenium.webdriver.common.keys import Keys

from ctl.dev.guest import console_guest_xml
from tests.support.browser import Page, chromium
from tests.support.qemucluster import HERDCTL, Cluster
from vocabulary import CONSOLE_TAKEN_OVER

pytestmark = pytest.mark.qemu

NAME = "look1"
BANNER = b"SeaBIOS (version"


@pytest.fixture(scope="module")
def cluster(storage_cluster: Cluster) -> Iterator[Cluster]:
    storage_cluster.client.post("/vm", {"xml": console_guest_xml(NAME), "node": "hv1"})
    storage_cluster.state(NAME, "start")
    yield storage_cluster
    storage_cluster.delete(NAME)


def api(cluster: Cluster, path: str) -> str:
    return cluster.client.url + "/api/v1" + path


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def receive_until(ws: aiohttp.ClientWebSocketResponse, needle: bytes, *,
                        timeout: float = 60.0) -> bytes:
    """What the console sends until `needle` shows (an assertion after `timeout`)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        try:
            msg = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        except TimeoutError:
            raise AssertionError(f"{needle!r} never came; got {seen[-500:]!r}") from None
        assert msg.type == aiohttp.WSMsgType.BINARY, (msg, seen[-500:])
        seen += msg.data
    return seen


async def follow_log_until(cluster: Cluster, needle: bytes, *, timeout: float = 60.0) -> bytes:
    """GET /vm/{vm}/log?follow=true until `needle` is in what came."""
    seen = b""
    async with aiohttp.ClientSession() as http, http.get(
            api(cluster, f"/vm/{NAME}/log?follow=true"), headers=bearer(cluster.client.token),
            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        assert resp.status == 200, await resp.text()
        async for chunk in resp.content.iter_any():
            seen += chunk
            if needle in seen:
                return seen
    raise AssertionError(f"the log ended without {needle!r}: {seen[-500:]!r}")


def console(cluster: Cluster, *args: str) -> pexpect.spawn:
    env = {**os.environ, "HERD_DEV_DIR": str(cluster.dir)}
    return pexpect.spawn(HERDCTL, ["vm", "console", NAME, *args], env=env, timeout=30)


def test_the_console_log_has_the_firmware_banner_from_the_start(cluster: Cluster) -> None:
    seen = asyncio.run(follow_log_until(cluster, BANNER))
    assert seen.index(BANNER) < 200  # the first thing the guest printed, not a later part
    assert cluster.ctl("vm", "log", NAME, "--lines", "0") == ""


def test_vm_console_in_a_terminal_sees_output_and_sends_keys(cluster: Cluster) -> None:
    term = console(cluster)
    term.expect("Connected to")
    term.send("\x1b")  # ESC: SeaBIOS's boot menu (it waits 60 s for it)
    term.expect("Select boot device")
    term.expect(r"(\d)\. iPXE")
    term.send(term.match.group(1).decode())
    for _ in range(60):  # Ctrl-B during iPXE's prompt (after its DHCP): its command line
        term.send("\x02")
        if term.expect(["iPXE>", pexpect.TIMEOUT], timeout=0.5) == 0:
            break
    term.send("echo hello-herd\r")
    term.expect("\r\nhello-herd\r\n")
    term.send("\x1d")  # Ctrl-]
    term.expect(r"console left \(Ctrl-\]\)")
    term.expect(pexpect.EOF)
    term.close()
    assert term.exitstatus == 0


def test_a_second_session_is_refused_unless_forced(cluster: Cluster) -> None:
    async def scenario() -> tuple[str, int | None]:
        async with aiohttp.ClientSession() as http:
            first = await http.ws_connect(api(cluster, f"/vm/{NAME}/console"),
                                          headers=bearer(cluster.client.token))
            refused = await asyncio.to_thread(subprocess.run, [HERDCTL, "vm", "console", NAME],
                                              env={**os.environ, "HERD_DEV_DIR": str(cluster.dir)},
                                              capture_output=True, text=True, timeout=60,
                                              stdin=subprocess.DEVNULL)
            assert refused.returncode != 0
            second = await http.ws_connect(api(cluster, f"/vm/{NAME}/console?force=true"),
                                           headers=bearer(cluster.client.token))
            msg = await asyncio.wait_for(first.receive(), 30)
            await second.close()
            return refused.stderr, msg.data if msg.type == aiohttp.WSMsgType.CLOSE else None

    stderr, code = asyncio.run(scenario())
    assert "in use by another session (--force takes it over)" in stderr
    assert code == CONSOLE_TAKEN_OVER


def test_the_console_follows_a_live_migration_and_the_log_goes_along(cluster: Cluster) -> None:
    async def scenario() -> bytes:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(api(cluster, f"/vm/{NAME}/console"),
                                       headers=bearer(cluster.client.token))
            await ws.send_bytes(b"echo before-move\r")
            await receive_until(ws, b"\r\nbefore-move\r\n")
            await asyncio.to_thread(cluster.place, NAME, "migrate", "hv2")
            note = await receive_until(ws, b"console attached there]")
            await ws.send_bytes(b"echo after-move\r")  # the same iPXE shell, on hv2
            await receive_until(ws, b"\r\nafter-move\r\n")
            await ws.close()
            return note

    note = asyncio.run(scenario())
    assert b"[herd: look1 moved from hv1 to hv2; console attached there]" in note
    assert cluster.vm(NAME)["status"]["node"] == "hv2"
    log = asyncio.run(follow_log_until(cluster, b"after-move"))
    assert BANNER in log and b"before-move" in log  # printed on hv1, served by hv2


def test_vm_vnc_relays_a_local_port_to_the_rfb_stream(cluster: Cluster) -> None:
    relay = subprocess.Popen([HERDCTL, "vm", "vnc", NAME, "--once"], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL,
                             env={**os.environ, "HERD_DEV_DIR": str(cluster.dir)})
    try:
        assert relay.stdout is not None
        host, port = relay.stdout.readline().strip().rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as viewer:
            assert viewer.recv(12) == b"RFB 003.008\n"
        assert relay.wait(timeout=30) == 0
    finally:
        relay.kill()
        relay.communicate()


def test_consoles_need_an_operator_and_the_log_a_viewer(cluster: Cluster) -> None:
    viewer = cluster.client.post("/token", {"name": "look-viewer", "role": "viewer"})["secret"]

    async def statuses() -> dict[str, int]:
        found = {}
        async with aiohttp.ClientSession() as http:
            for who, token in (("anonymous", None), ("viewer", viewer)):
                for kind in ("console", "vnc"):
                    try:
                        ws = await http.ws_connect(api(cluster, f"/vm/{NAME}/{kind}"),
                                                   headers=bearer(token))
                        await ws.close()
                        found[f"{who} {kind}"] = 101
                    except aiohttp.WSServerHandshakeError as e:
                        found[f"{who} {kind}"] = e.status
            async with http.get(api(cluster, f"/vm/{NAME}/log?lines=1"),
                                headers=bearer(viewer)) as resp:
                found["viewer log"] = resp.status
        return found

    assert asyncio.run(statuses()) == {"anonymous console": 401, "anonymous vnc": 401,
                                       "viewer console": 403, "viewer vnc": 403,
                                       "viewer log": 200}
    cluster.client.call("DELETE", "/token/look-viewer")


def test_vm_info_shows_the_figures_its_node_measures(cluster: Cluster) -> None:
    figures = cluster.client.get(f"/vm/{NAME}/figures")
    assert figures["node"] == "hv2" and figures["figures"]["state"] == "running"
    assert figures["figures"]["memoryBytes"] == 64 << 20
    assert figures["figures"]["cpuPercent"] >= 0
    node = cluster.client.get("/node/hv2/figures")
    assert NAME in node["vms"] and node["total"]["memoryBytes"] >= 64 << 20
    assert "Now:" in cluster.ctl("vm", "info", NAME)


def test_the_web_console_shows_the_boot_and_sends_keys(cluster: Cluster) -> None:
    """Issue #18: the page's serial console (xterm.js over the API's WebSocket, the token
    as a subprotocol) shows a real guest's firmware and sends it a key (ESC: the boot
    menu SeaBIOS offers for 60 s after power-on); its display (noVNC) connects and draws
    the guest's screen at the guest's resolution."""
    cluster.state(NAME, "stop")
    cluster.state(NAME, "start")
    with chromium() as driver:
        page = Page(driver, cluster.client.url)
        page.open(f"#/vm/{NAME}")
        page.find("#token").send_keys(cluster.client.token or "")
        page.click("#login button[type=submit]")
        page.click("#tab-console")
        page.until(lambda _d: page.text_of("#console-status").startswith("connected"))
        page.find("#terminal .xterm-helper-textarea").send_keys(Keys.ESCAPE)
        page.until(lambda _d: "Select boot device" in page.text_of("#terminal .xterm-rows"),
                   timeout=30)
        page.click("#tab-vnc")  # leaves the serial console; noVNC over the API's WebSocket
        page.until(lambda _d: page.text_of("#vnc-status") == "connected (VNC)", timeout=30)
        size = driver.execute_script("const c = document.querySelector('#screen canvas');"
                                     "return c ? [c.width, c.height] : null")
        assert size is not None and size[0] >= 640 and size[1] >= 400, size  # the guest's mode
        page.click("#tab-events")  # the display session ends
