"""Entry point of `herd-api` (console script), called by the shell, a service manager or
`herdctl dev up`.

- `herd-api [--config FILE] [flags]` serves the API until SIGTERM or SIGINT; once it
  listens it prints `herd-api: serving on <url>` (with the real port when 0 was asked).
  Bad configuration: a message naming the key, exit code 2, nothing connected. ZooKeeper
  unreachable or a newer cluster layout at start-up: a message, exit code 1.
- `herd-api token create --token-file FILE [--label L]` prints a new random token and
  appends its sha256 to the file: a break-glass `admin` token (README, Security); the
  managed tokens are made through the API (`herdctl token create`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from server.app import make_app, ssl_context
from server.auth import create_token
from server.config import ServerConfig, load_config
from store.configfile import ConfigError
from store.errors import LayoutTooNew, Unavailable


def _serve_flags(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", type=Path, help="YAML configuration file")
    ap.add_argument("--zk-hosts", help="ZooKeeper hosts, host:port[,host:port...]")
    ap.add_argument("--zk-root", help="cluster root znode (default /herd)")
    ap.add_argument("--zk-timeout", type=float, help="ZooKeeper session timeout (s)")
    ap.add_argument("--listen-host", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--listen-port", type=int, help="port to listen on (0: any free port)")
    ap.add_argument("--token-file", help="file of accepted token hashes")
    ap.add_argument("--anonymous-reads", action=argparse.BooleanOptionalAction, default=None,
                    help="allow reads without a token")
    ap.add_argument("--tls-cert", help="TLS certificate (PEM)")
    ap.add_argument("--tls-key", help="TLS private key (PEM)")
    ap.add_argument("--max-body-bytes", type=int, help="largest request body accepted")
    ap.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="herd-api", description="Herd's REST API server.")
    _serve_flags(ap)
    sub = ap.add_subparsers(dest="command")
    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="print a new break-glass admin token, "
                                   "store its hash in the file")
    create.add_argument("--token-file", dest="new_token_file", type=Path, required=True)
    create.add_argument("--label", default="", help="a note kept beside the hash")
    return ap.parse_args(argv)


def config_from(args: argparse.Namespace) -> ServerConfig:
    skip = {"config", "command", "token_command", "new_token_file", "label"}
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in skip}
    return load_config(args.config, overrides)


async def serve(config: ServerConfig) -> None:
    context = ssl_context(config)
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.listen_host, config.listen_port, ssl_context=context)
        await site.start()
        host, port = runner.addresses[0][:2]
        scheme = "https" if context else "http"
        print(f"herd-api: serving on {scheme}://{host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "token":
        print(create_token(args.new_token_file, label=args.label))
        return
    try:
        config = config_from(args)
        ssl_context(config)
    except ConfigError as e:
        print(f"herd-api: {e}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s herd-api %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(config))
    except (Unavailable, LayoutTooNew, OSError) as e:
        print(f"herd-api: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":  # `python -m server.main`, e.g. under a profiler
    main()
