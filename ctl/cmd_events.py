"""`herdctl events [--audit] [--vm NAME] [--kind KIND]`: the cluster's event log
(`GET /event`): the primary's decisions, live migrations and, with `--audit`, only the
audit trail of the API (every write: token, role, method, route, object, status).
`herdctl vm events NAME` shows one VM's part of the same log. Registered by `ctl.main`.
"""

from __future__ import annotations

import click

from ctl.common import Ctl, emit, output_option, pass_ctl, term_width
from ctl.errors import InputError
from ctl.output import FORMATS, render
from ctl.views import AUDIT_COLUMNS, EVENT_COLUMNS

AUDIT_KIND = "audit"  # the kind of the API's audit records (server.audit)


@click.command("events")
@output_option(*FORMATS, default="table")
@click.option("--audit", is_flag=True, help="only the audit trail: who wrote what, and "
              "the answer")
@click.option("--vm", help="only events about this VM")
@click.option("--kind", help="only events of this kind (migrated, fenced, audit, ...)")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="at most this many, the newest")
@pass_ctl
def events(ctl: Ctl, fmt: str, *, audit: bool, vm: str | None, kind: str | None,
           limit: int) -> None:
    """The cluster's event log, newest last."""
    if audit and kind not in (None, AUDIT_KIND):
        raise InputError("--audit shows the audit records only: leave --kind out")
    kind = AUDIT_KIND if audit else kind
    answer = ctl.client.get("/event", vm=vm, kind=kind, limit=limit)
    columns = AUDIT_COLUMNS if kind == AUDIT_KIND else EVENT_COLUMNS
    emit(render(answer["items"], fmt, columns=columns, kind="event", width=term_width()))
