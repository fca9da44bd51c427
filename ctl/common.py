"""What every herdctl command shares: the context object (settings, the client, the
output width), the `-o` option, and `emit` to print what a formatter made of a command's
data. Called by the command modules and `ctl.main`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from ctl.client import Client
from ctl.settings import make_client

F = TypeVar("F", bound=Callable[..., Any])
WAIT_SLACK = 10.0  # seconds the HTTP call may take beyond the wait the server is asked for


@dataclass
class Ctl:
    """The root options; the client is made at the first use."""

    api: str | None = None
    timeout: float = 120.0
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = make_client(self.api, timeout=self.timeout + WAIT_SLACK)
        return self._client


pass_ctl = click.make_pass_decorator(Ctl, ensure=True)


def term_width() -> int | None:
    """The terminal's width when output goes to one (or COLUMNS says), else None."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def output_option(*choices: str, default: str) -> Callable[[F], F]:
    return click.option("-o", "--output", "fmt", type=click.Choice(choices), default=default,
                        show_default=True, help="output format")


def wait_option(func: F) -> F:
    return click.option("--wait", is_flag=True,
                        help="return once it is done (bounded by --timeout)")(func)


def emit(text: str) -> None:
    """Print `text` (nothing when empty) with exactly one final newline."""
    if text:
        click.echo(text, nl=not text.endswith("\n"))
