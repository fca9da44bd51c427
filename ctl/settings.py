"""Which API herdctl talks to, with which token: resolved once per command.

The server: `--api URL`, else `$HERD_API`, else the local dev cluster's state file
(`$HERD_DEV_DIR` or `~/.herd/dev`, `api.json`, written by `herdctl dev up`).
The token: `$HERD_TOKEN`, else the dev cluster's, but only when the server IS the dev
cluster's (its token is never sent elsewhere); without either, requests go anonymous.
No server at all is a usage error (exit 2) that says how to get one.
Called by `ctl.main` (lazily: `dev` and `--help` never need a server).
"""

from __future__ import annotations

import os

from ctl.client import Client, base_url
from ctl.dev import state
from ctl.errors import InputError

NO_SERVER = ("no API server: give --api URL or set HERD_API, or start a local cluster "
             "with `herdctl dev up`")


def make_client(api: str | None, *, timeout: float) -> Client:
    url = api or os.environ.get("HERD_API") or None
    token = os.environ.get("HERD_TOKEN") or None
    dev = state.load(state.default_dir())
    dev_url = base_url(dev.url) if dev is not None and dev.url else None
    if url is None:
        if dev_url is None:
            raise InputError(NO_SERVER)
        url = dev_url
    if token is None and dev is not None and dev_url == base_url(url):
        token = dev.token or None
    return Client(url, token=token, timeout=timeout)
