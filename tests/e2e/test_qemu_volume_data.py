"""A volume's data through Herd (issue #15) on a real QEMU host (the storage cluster of
tests/e2e/conftest.py; the volumes on hv1: the bytes go from herdctl through herd-api to
the host's libvirtd over its TCP listener, as they would over TLS in production).

- A raw and a qcow2 volume of 64 MiB: a 64 MiB file of a known random pattern goes in
  with `herdctl volume upload` (the qcow2 one as a qcow2 image of it) and comes back
  identical with `herdctl volume download`; the image on the host, read outside Herd,
  holds the same data (`qemu-img compare` against the raw pattern).
- Refused, and nothing changed on the host: a file bigger than the volume (413 naming
  the size), raw bytes into a qcow2 volume (422).
- A client that goes away mid-upload: libvirt's stream is aborted and the volume let go
  (not left busy), so the next upload lands whole.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.support.qemucluster import HERDCTL, WAIT, Cluster

pytestmark = pytest.mark.qemu

MiB = 1 << 20


@pytest.fixture
def cluster(storage_cluster: Cluster) -> Cluster:
    return storage_cluster  # tests/e2e/conftest.py: pools local and shared


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 MiB of a seeded random pattern (raw) and its qcow2 image beside it."""
    path = tmp_path_factory.mktemp("pattern") / "pattern.raw"
    path.write_bytes(random.Random(15).randbytes(64 * MiB))
    _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(path),
         str(path.with_suffix(".qcow2")))
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL)


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(MiB):
            digest.update(data)
    return digest.hexdigest()


def _image(cluster: Cluster, name: str) -> Path:
    """The volume's image file on the host, outside Herd (the host's own /var/lib)."""
    return cluster.hosts["hv1"].dir / "lib" / "herd-pools" / "local" / name


def _same_disk(image: Path, raw: Path) -> bool:
    return _run("qemu-img", "compare", "-q", str(image), str(raw)).returncode == 0


def _refused(cluster: Cluster, *args: str) -> str:
    """herdctl's stderr for a command the server refuses (exit status 1)."""
    done = subprocess.run([HERDCTL, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HERD_DEV_DIR": str(cluster.dir)},
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stderr


def _make(cluster: Cluster, name: str, fmt: str) -> None:
    """A 64 MiB volume on hv1, once its node says it is ready (Volume watch events)."""
    cluster.ctl("volume", "create", "local", name, "--size", "64M", "--format", fmt,
                "--node", "hv1")
    for event in cluster.client.watch(timeout=WAIT, kind="Volume"):
        if event.get("name") == f"local/{name}" and (
                (event.get("object") or {}).get("status") or {}).get("state") == "ready":
            return
    raise AssertionError(f"volume local/{name} never got ready")


def test_a_file_goes_into_a_raw_volume_and_comes_back(cluster: Cluster, pattern: Path,
                                                      tmp_path: Path) -> None:
    _make(cluster, "raw1", "raw")
    out = cluster.ctl("volume", "upload", "local", "raw1", str(pattern))
    assert "uploaded 64.0 MiB to volume/local/raw1 on hv1" in out
    assert _sha(_image(cluster, "raw1")) == _sha(pattern)  # on the host, outside Herd
    back = tmp_path / "raw1.out"
    cluster.ctl("volume", "download", "local", "raw1", str(back))
    assert _sha(back) == _sha(pattern)
    stderr = _refused(cluster, "volume", "upload", "local", "raw1",
                      str(_bigger(pattern, tmp_path)))
    assert "413" in stderr and str(65 * MiB) in stderr
    assert _sha(_image(cluster, "raw1")) == _sha(pattern)  # nothing changed


def test_a_qcow2_image_goes_into_a_qcow2_volume_and_comes_back(
        cluster: Cluster, pattern: Path, tmp_path: Path) -> None:
    _make(cluster, "qcow1", "qcow2")
    image = pattern.with_suffix(".qcow2")
    cluster.ctl("volume", "upload", "local", "qcow1", str(image))
    assert _same_disk(_image(cluster, "qcow1"), pattern)
    back = tmp_path / "qcow1.out"
    cluster.ctl("volume", "download", "local", "qcow1", str(back))
    assert _sha(back) == _sha(image)
    stderr = _refused(cluster, "volume", "upload", "local", "qcow1", str(pattern))
    assert "422" in stderr and "Not a qcow2 image" in stderr
    assert _same_disk(_image(cluster, "qcow1"), pattern)


def test_a_client_that_leaves_mid_upload_aborts_it(cluster: Cluster, pattern: Path) -> None:
    _make(cluster, "raw2", "raw")
    url = urllib.parse.urlsplit(cluster.client.url)
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=30) as s:
        s.sendall(f"PUT /api/v1/volume/local/raw2/data HTTP/1.1\r\nHost: herd\r\n"
                  f"Authorization: Bearer {cluster.client.token}\r\n"
                  f"Content-Length: {64 * MiB}\r\n\r\n".encode())
        s.sendall(b"\x01" * (16 * MiB))  # a quarter, then the client is gone
    for _ in range(20):  # until the server has noticed (its handler ends with the stream)
        done = subprocess.run([HERDCTL, "volume", "upload", "local", "raw2", str(pattern)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "HERD_DEV_DIR": str(cluster.dir)},
                              stdin=subprocess.DEVNULL)
        if "takes an upload already" not in done.stderr:
            break
    assert done.returncode == 0, done.stderr  # not stuck: the aborted upload let go
    assert _sha(_image(cluster, "raw2")) == _sha(pattern)


def _bigger(pattern: Path, folder: Path) -> Path:
    path = folder / "bigger.raw"
    path.write_bytes(pattern.read_bytes() + b"\0" * MiB)
    return path
