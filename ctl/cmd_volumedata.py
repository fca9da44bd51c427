"""`herdctl volume upload POOL NAME FILE` and `herdctl volume download POOL NAME FILE`
(issue #15): a volume's image file to or from the API (`PUT`/`GET
/volume/{pool}/{vol}/data`), streamed from or to FILE in chunks (never read whole), with a
progress bar on stderr (bytes and rate; click's own, so herdctl needs no other package).
A download goes to FILE.part first and is renamed when complete, so a cut transfer
never leaves a file that looks whole. Registered into the `volume` group by `ctl.main`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from ctl.common import Ctl, emit, pass_ctl
from ctl.errors import CtlError

CHUNK = 1 << 20


class Meter:
    """Bytes moved and the rate, for the bar and the last line."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)

    def show(self, _item: Any = None) -> str:
        total = f"/{_mib(self.total)}" if self.total is not None else ""
        return f"{_mib(self.done)}{total} MiB  {_mib(self.rate())} MiB/s"

    def summary(self, verb: str, what: str) -> str:
        took = time.monotonic() - self.started
        return (f"{verb} {_mib(self.done)} MiB {what} in {took:.1f} s "
                f"({_mib(self.rate())} MiB/s)")


def _mib(value: float | None) -> str:
    return f"{(value or 0) / (1 << 20):.1f}"


def _bar(meter: Meter, label: str) -> Any:
    return click.progressbar(length=meter.total or 0, label=label, file=sys.stderr,
                             item_show_func=meter.show, show_percent=meter.total is not None,
                             show_eta=False, width=24)


def _read(f: IO[bytes], meter: Meter, bar: Any) -> Iterator[bytes]:
    while data := f.read(CHUNK):
        meter.done += len(data)
        bar.update(len(data), current_item=meter)
        yield data


@click.command("upload")
@click.argument("pool")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctl
def volume_upload(ctl: Ctl, pool: str, name: str, file: Path) -> None:
    """Write FILE into volume NAME as its image (raw bytes; a qcow2 volume takes a qcow2
    file). Refused while a VM that has the volume runs."""
    size = file.stat().st_size
    meter = Meter(size)
    with open(file, "rb") as f, _bar(meter, f"{pool}/{name} <- {file.name}") as bar:
        chunks: Iterable[bytes] = _read(f, meter, bar)
        done = ctl.client.upload(f"/volume/{pool}/{name}/data", chunks, length=size)
    emit(meter.summary("uploaded", f"to volume/{pool}/{name} on {done.get('node')}"))


@click.command("download")
@click.argument("pool")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctl
def volume_download(ctl: Ctl, pool: str, name: str, file: Path) -> None:
    """Save volume NAME's image file as FILE (FILE.part until it is complete)."""
    size, chunks = ctl.client.download(f"/volume/{pool}/{name}/data", chunk=CHUNK)
    meter = Meter(size)
    part = file.with_name(file.name + ".part")
    try:
        with open(part, "wb") as f, _bar(meter, f"{pool}/{name} -> {file.name}") as bar:
            for data in chunks:
                f.write(data)
                meter.done += len(data)
                bar.update(len(data), current_item=meter)
        if size is not None and meter.done != size:
            raise CtlError(f"the download ended after {meter.done} of {size} bytes")
        os.replace(part, file)
    finally:
        part.unlink(missing_ok=True)
    emit(meter.summary("downloaded", f"of volume/{pool}/{name} to {file}"))
