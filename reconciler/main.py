"""Entry point of `herd-node` (console script): parse flags, load the configuration, run the
daemon until SIGTERM or SIGINT. Bad configuration: a message naming the key, exit code 2,
nothing written. Called by the shell, a service manager or `herdctl dev up`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from reconciler.config import INITIAL_DOMAIN_STATES, NodeConfig, load_config
from store.configfile import ConfigError
from store.errors import LayoutTooNew, Unavailable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="herd-node", description="Herd's node daemon.")
    ap.add_argument("--config", type=Path, help="YAML file (default /etc/herd/node.yaml)")
    ap.add_argument("--name", help="node name (default: the hostname)")
    ap.add_argument("--zk-hosts", help="ZooKeeper hosts, host:port[,host:port...]")
    ap.add_argument("--zk-root", help="cluster root znode (default /herd)")
    ap.add_argument("--zk-timeout", type=float, help="ZooKeeper session timeout (s)")
    ap.add_argument("--libvirt-uri", help="libvirt URI (default qemu:///system)")
    ap.add_argument("--coordinator", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--address", help="address other nodes reach this one at")
    ap.add_argument("--initial-domain-state", choices=INITIAL_DOMAIN_STATES)
    ap.add_argument("--status-interval", type=float)
    ap.add_argument("--resync-interval", type=float)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--log-level")
    ap.add_argument("--event-log", help="append one JSON line per libvirt lifecycle event")
    return ap.parse_args(argv)


def config_from(args: argparse.Namespace) -> NodeConfig:
    overrides = {k: v for k, v in vars(args).items() if k != "config"}
    return load_config(args.config, overrides)


async def serve(config: NodeConfig) -> None:
    from reconciler.daemon import NodeDaemon

    daemon = NodeDaemon(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)
    await daemon.run()


def main(argv: list[str] | None = None) -> None:
    try:
        config = config_from(parse_args(argv))
    except ConfigError as e:
        print(f"herd-node: {e}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=config.log_level,
                        format=f"%(asctime)s {config.name} %(levelname)s %(name)s: %(message)s")
    # transitions logs every state entry and exit at INFO: ~9 lines per reconcile.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(config))
    except (Unavailable, LayoutTooNew) as e:
        print(f"herd-node: {e}", file=sys.stderr)
        sys.exit(1)
