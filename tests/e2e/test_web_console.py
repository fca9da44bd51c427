"""The web console (issue #18) in a real browser (headless Chromium through Selenium)
against a real dev cluster (`herdctl dev up`: ZooKeeper, three herd-node daemons on
libvirt's test driver, herd-api serving `/ui/`), with the examples applied by herdctl.

Sign-in with the dev token; the VM table shows the applied examples; a change made with
herdctl appears in the page without a reload (the watch stream); a VM shut down and
started again from the page; a node flushed from the page while the page shows its VMs
leave; the migrate dialog offers only nodes inside the VM's limits; a bad document in
Apply shows the API's field error; a VM's own YAML edited and applied after the API's
diff; a viewer's token is offered no action. Screenshots of the main pages are saved under the
test's directory (and into $HERD_SCREENSHOTS when set: docs/screenshots/ for the README).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from ctl.client import Client
from ctl.dev import state
from tests.support.browser import Page, chromium

HERDCTL = str(Path(sys.executable).with_name("herdctl"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def herdctl(directory: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("HERD_API", "HERD_TOKEN")}
    done = subprocess.run([HERDCTL, *args], capture_output=True, text=True, timeout=120,
                          env={**env, "HERD_DEV_DIR": str(directory)}, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("ui")
    try:
        herdctl(directory, "dev", "up", "--nodes", "3", "--timeout", "60")
        herdctl(directory, "apply", "-f", str(EXAMPLES))
        yield directory
    finally:
        subprocess.run([HERDCTL, "dev", "down", "--dir", str(directory)], capture_output=True,
                       timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def page(cluster: Path) -> Iterator[Page]:
    dev = state.load(cluster)
    assert dev is not None
    with chromium() as driver:
        made = Page(driver, dev.url)
        made.open()
        made.find("#token").send_keys(dev.token)
        made.click("#login button[type=submit]")
        made.find("#sign-out")
        yield made


def _shot(page: Page, tmp: Path, name: str) -> None:
    page.shot(tmp / f"{name}.png")
    target = os.environ.get("HERD_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / f"{name}.png", Path(target) / f"{name}.png")


def _state_in_table(page: Page, vm: str) -> str:
    return page.text_of(f'#vm-rows .row[data-vm="{vm}"] .state')


def test_signed_in_the_cluster_shows_every_node(page: Page, tmp_path: Path) -> None:
    assert "admin" in page.text_of("#who")
    page.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nodes .card")) == 3)
    page.until(lambda _d: page.text_of("#primary").startswith("hv"))
    _shot(page, tmp_path, "cluster")


def test_the_table_shows_the_examples_and_follows_the_cli(page: Page, cluster: Path,
                                                          tmp_path: Path) -> None:
    page.go("#/vms")
    page.until(lambda _d: _state_in_table(page, "web1") == "running", timeout=30)
    assert {"db1", "pinned", "web1", "web2", "stubborn"} <= set(
        page.attrs("#vm-rows .row", "data-vm"))
    _shot(page, tmp_path, "vms")
    page.driver.execute_script("window.herdNoReload = true")
    herdctl(cluster, "vm", "stop", "web1")
    page.until(lambda _d: _state_in_table(page, "web1") == "stopped", timeout=10)
    assert page.driver.execute_script("return window.herdNoReload") is True  # no reload
    page.find("#filter").send_keys("state:stopped")
    page.until(lambda _d: "web1" in page.attrs("#vm-rows .row", "data-vm")
               and "db1" not in page.attrs("#vm-rows .row", "data-vm"))
    herdctl(cluster, "vm", "start", "web1")


def test_shutdown_and_start_from_the_page(page: Page, tmp_path: Path) -> None:
    page.go("#/vm/db1")
    page.until(lambda _d: "running" in page.text_of("#vm-state"), timeout=30)
    page.click("#do-shutdown")
    page.confirm()
    page.until(lambda _d: page.text_of("#vm-state").startswith("stopped"), timeout=30)
    page.click("#do-start")
    page.confirm()
    page.until(lambda _d: page.text_of("#vm-state").startswith("running"), timeout=30)
    _shot(page, tmp_path, "vm")


def test_the_migrate_dialog_offers_only_nodes_inside_the_limits(page: Page) -> None:
    page.go("#/vm/db1")  # limits [hv2, hv3]
    page.until(lambda _d: page.text_of("#vm-node") in ("hv2", "hv3"), timeout=30)
    here = page.text_of("#vm-node")
    page.click("#do-migrate")
    page.find("#target")
    assert page.attrs("#target option", "value") == [n for n in ("hv2", "hv3") if n != here]
    page.click("#dialog-cancel")


def test_flush_a_node_from_the_page_and_watch_its_vms_leave(page: Page, tmp_path: Path) -> None:
    page.go("#/node/hv1")
    page.find("#node-vms")
    page.click("#node-flush")
    page.confirm()
    page.until(lambda _d: "flushed" in page.text_of('[data-node="hv1"] h3'), timeout=30)
    page.until(lambda _d: "running" not in page.attrs("#node-vms [data-vm]", "data-state"))
    _shot(page, tmp_path, "node")
    page.click("#node-ready")
    page.confirm()
    page.until(lambda _d: "ready" in page.text_of('[data-node="hv1"] h3'), timeout=30)


def test_a_bad_document_shows_the_apis_field_error(page: Page, tmp_path: Path) -> None:
    page.go("#/apply")
    page.find("#yaml").send_keys(
        "apiVersion: herd/v1\nkind: VM\nmetadata: {name: bad1}\nspec:\n  state: flying\n"
        "  xml: \"<domain type='test'><name>bad1</name><memory>1</memory></domain>\"\n")
    page.click("#apply-check")
    page.find("#apply-result .error")
    error = page.text_of("#apply-result .error")
    assert "objects.0.spec.state" in error and "flying" in error
    _shot(page, tmp_path, "apply")


def test_a_vms_own_yaml_is_edited_and_applied_after_its_diff(page: Page, cluster: Path) -> None:
    page.go("#/vm/web2")
    page.find("#vm-state")
    page.click("#do-yaml")
    page.until(lambda d: "name: web2" in d.execute_script(
        "const a = document.querySelector('#yaml'); return a ? a.value : ''"))
    page.driver.execute_script(  # the edit a person would make in the text
        "const a = document.querySelector('#yaml');"
        "a.value = a.value.replace('tier: web', 'tier: frontend');"
        "a.dispatchEvent(new Event('input'))")
    page.click("#apply-check")
    page.until(lambda _d: "metadata.labels.tier" in page.text_of("#apply-diff"))
    page.click("#apply-do")
    page.until(lambda _d: "VM web2: configured" in page.text_of("#applied"))
    dev = state.load(cluster)
    assert dev is not None
    vm = Client(dev.url, token=dev.token).get("/vm/web2")
    assert vm["metadata"]["labels"] == {"tier": "frontend"}  # in the cluster, not the page


def test_a_viewer_is_offered_no_action(cluster: Path) -> None:
    made = json.loads(herdctl(cluster, "token", "create", "ui-viewer", "--role", "viewer",
                              "-o", "json"))
    dev = state.load(cluster)
    assert dev is not None
    with chromium() as driver:
        page = Page(driver, dev.url)
        page.open("#/vm/web1")
        page.find("#token").send_keys(made["secret"])
        page.click("#login button[type=submit]")
        page.until(lambda _d: "ui-viewer (viewer)" in page.text_of("#who"))
        page.find("#vm-state")
        disabled = page.attrs(".actions button", "disabled")
        assert disabled and all(d is not None for d in disabled)  # every action
        assert page.attrs(".tabs button", "data-tab") == ["events", "log"]  # no consoles
    herdctl(cluster, "token", "revoke", "ui-viewer")
