"""`herd-watchdog`: the node watchdog's command line (see `reconciler.watchdog`).

    herd-watchdog --socket /run/herd/watchdog.sock --libvirt-uri qemu:///system \
        [--device /dev/watchdog]

Run it as its own service, started before herd-node and never stopped with it (a
systemd unit of its own, `Restart=always`): herd-node's config names the socket
(`watchdog_socket`). SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from reconciler.libvirt.poweroff import power_off_all
from reconciler.watchdog.mux import Firing, WatchdogMux


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="herd-watchdog", description=__doc__.split("\n")[0])
    parser.add_argument("--socket", type=Path, required=True, help="the Unix socket to serve")
    parser.add_argument("--libvirt-uri", required=True, help="the host's libvirt")
    parser.add_argument("--device", type=Path, help="a watchdog device to feed (/dev/watchdog)")
    parser.add_argument("--device-interval", type=float, default=1.0)
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    mux = WatchdogMux(args.socket, Firing(lambda: power_off_all(args.libvirt_uri)),
                      device=args.device, device_interval=args.device_interval)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, mux.stop)
    await mux.serve()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s herd-watchdog %(levelname)s %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
