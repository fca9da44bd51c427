"""Benchmark: the web console with 10,000 VMs in a real browser (headless Chromium through
Selenium), herd-api as a process over a real ZooKeeper (issue #18).

- First render of the VM table: from the route to #/vms until the table shows all 10,000
  (the list from the API, the model, the first paint: `performance` marks the page sets);
  naive: the same 10,000 rows all put in the page at once (no virtualisation), timed in
  the same browser until layout.
- Frame time while the watch stream changes 100 VMs a second for 10 s (metadata writes
  through the API): p50 / p99 / worst frame of a requestAnimationFrame loop (a change that
  keeps a row in place replaces that row only; the first form sorted all 10,000 rows per
  frame: 167 / 317 / 317 ms).
Run: `.venv/bin/python -m bench.ui_bench [--quick]`. Writes bench/results/ui.{json,md}.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.api_bench import ROOT, populate, start_server, stop_server
from bench.common import save, zookeeper
from store.client import Store
from store.layout import ensure_layout
from tests.support.browser import Page, chromium

NAIVE = """
const body = document.createElement("div");
document.body.append(body);
const t0 = performance.now();
for (let i = 0; i < arguments[0]; i++) {
  const row = document.createElement("div");
  row.className = "row";
  row.innerHTML = `<div><a href="#">vm${i}</a></div><div><span class="state">stopped</span>`
    + "</div><div>stopped</div><div>-</div><div>-</div><div class='small'></div>";
  body.append(row);
}
body.offsetHeight;  // layout
const took = performance.now() - t0;
body.remove();
return took;
"""

FRAMES = """
window.herdFrames = [];
let last = performance.now();
const tick = (now) => { window.herdFrames.push(now - last); last = now;
                        if (!window.herdStop) requestAnimationFrame(tick); };
requestAnimationFrame(tick);
"""


async def churn(url: str, token: str, names: list[str], *, per_second: int,
                seconds: float) -> int:
    """`per_second` metadata writes a second through the API; how many were acknowledged."""
    done = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        start = time.monotonic()
        for i in range(int(per_second * seconds)):
            await asyncio.sleep(max(0.0, start + i / per_second - time.monotonic()))
            name = names[(i * 97) % len(names)]
            async with http.post(f"{url}/api/v1/vm/{name}/meta",
                                 json={"autorestart": i % 2 == 0}) as resp:
                done += resp.status == 200
    return done


def first_render(page: Page, count: int) -> float:
    page.go("#/")
    page.find("#nodes")
    page.driver.execute_script("performance.clearMarks()")
    page.go("#/vms")
    page.until(lambda _d: page.text_of("#count").startswith(f"{count} of {count}"), timeout=60)
    return float(page.driver.execute_script(
        "const [a] = performance.getEntriesByName('herd:route');"
        "const [b] = performance.getEntriesByName('herd:vm-table');"
        "return b.startTime - a.startTime;"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(url: str, token: str, names: list[str], *, seconds: float) -> dict[str, Any]:
    with chromium() as driver:
        page = Page(driver, url)
        page.open()
        page.find("#token").send_keys(token)
        page.click("#login button[type=submit]")
        page.find("#sign-out")
        render_ms = first_render(page, len(names))
        naive_ms = float(driver.execute_script(NAIVE, len(names)))
        driver.execute_script(FRAMES)
        acked = asyncio.run(churn(url, token, names, per_second=100, seconds=seconds))
        driver.execute_script("window.herdStop = true")
        frames = [float(f) for f in driver.execute_script("return window.herdFrames")][1:]
    return {"vms": len(names), "first_render_ms": render_ms, "naive_render_ms": naive_ms,
            "changes": acked, "frames": len(frames), "frame_p50_ms": percentile(frames, 50),
            "frame_p99_ms": percentile(frames, 99), "frame_max_ms": max(frames)}


def main(quick: bool = False) -> None:
    count, seconds = (1_000, 3.0) if quick else (10_000, 10.0)
    with zookeeper() as zk, tempfile.TemporaryDirectory(prefix="herd-ui-bench-") as tmp:
        store = Store(zk.hosts, ROOT)
        store.start()
        ensure_layout(store)
        names = populate(store, 0, count)
        proc, url, token = start_server(zk.hosts, Path(tmp))
        try:
            f = measure(url, token, names, seconds=seconds)
        finally:
            stop_server(proc)
            store.stop()
    save("ui", f, [
        (f"VM table, {count:,} VMs: route -> table rendered (list, model, first paint)",
         f"{f['first_render_ms']:,.0f} ms",
         f"{f['naive_render_ms']:,.0f} ms (every row in the page, DOM + layout only)", "—"),
        (f"frame time while 100 VMs/s change ({f['changes']} changes in {seconds:g} s), "
         "p50 / p99 / worst", f"{f['frame_p50_ms']:.1f} / {f['frame_p99_ms']:.1f} / "
         f"{f['frame_max_ms']:.0f} ms ({f['frames']} frames)", "—", "no freeze"),
    ])


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
