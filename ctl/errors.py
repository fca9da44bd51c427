"""herdctl's errors and exit codes: 0 ok, 1 an error the server reported (or no answer,
or a wait that ran out of time), 2 a usage error (bad options, or files that are not valid
before anything is sent). Every message goes to standard error as `herdctl: <message>`.

`CtlError` (exit 1) and `InputError` (exit 2) are raised by the modules below the command
layer; `Failure` is what click shows. `from_api` turns the server's error body
(`{"error": {code, message, details}}`) into a `Failure` with the field-level details.
Called by `ctl.main` (the root group converts) and the command modules.
"""

from __future__ import annotations

from typing import IO, Any

import click

from ctl.client import ApiError


class CtlError(Exception):
    """An error of herdctl's own, exit code 1."""

    exit_code = 1


class InputError(CtlError):
    """Bad input found before anything was sent (a usage error), exit code 2."""

    exit_code = 2


class Failure(click.ClickException):
    """What the user sees: `herdctl: message`, then detail lines, on stderr."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"herdctl: {self.message}", err=True)
        for line in self.details:
            click.echo(f"  {line}", err=True)


class UsageFailure(Failure):
    """A `Failure` that is the user's to fix before anything is sent."""

    exit_code = 2


def failure_of(e: CtlError) -> Failure:
    cls = UsageFailure if e.exit_code == 2 else Failure
    return cls(str(e))


def flatten(messages: Any, path: str = "", *, scalars: bool = True) -> list[tuple[str, str]]:
    """Nested field messages (marshmallow's shape) as (dotted field path, message) pairs;
    list indices as `[i]`. Without `scalars`, only lists of strings count as messages."""
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            if key == "_schema":
                sub = path
            elif isinstance(key, int) or (isinstance(key, str) and key.isdigit() and path):
                sub = f"{path}[{key}]"
            else:
                sub = f"{path}.{key}" if path else str(key)
            out += flatten(value, sub, scalars=scalars)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(path, m) for m in messages]
    if isinstance(messages, list):
        return [pair for m in messages for pair in flatten(m, path, scalars=scalars)]
    return [(path, str(messages))] if scalars else []


def field_messages(details: Any) -> list[str]:
    """The field messages of an error body's details as `field: message` lines; other
    details (such as a VM's state after a wait timed out) are left out."""
    if not isinstance(details, dict):
        return []
    return [f"{path}: {msg}" if path else msg
            for path, msg in flatten(details, scalars=False)]


def from_api(e: ApiError) -> Failure:
    details = [d for d in field_messages(e.details) if not d.endswith(": " + e.message)]
    return Failure(f"{e.message} [{e.status} {e.code}]", details=details)
