"""Fence agents: power a failed node off before its VMs are started anywhere else.

Configured in the coordinators' local config file (credentials never go to ZooKeeper):

    fence:
      default: {agent: command, command: /usr/local/sbin/fence-node, timeout: 60}
      nodes:
        hv1: {agent: ipmi, host: 10.0.0.11, user: admin, password: secret}

- `command`: runs the executable with HERD_NODE=<node> in its environment (and the node
  name as its argument); exit 0 means fenced.
- `ipmi`: `ipmitool chassis power off`, then `chassis power status` must say off; only a
  confirmed off is a success.
A node without an agent is not fenced, so nothing of it is recovered. Called by the
primary's fence controller (`reconciler.cluster.controllers`), in a thread.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema


@dataclass(frozen=True)
class FenceResult:
    ok: bool
    message: str


class AgentSchema(Schema):
    class Meta:
        unknown = RAISE

    agent = fields.String(required=True, validate=validate.OneOf(["command", "ipmi"]))
    command = fields.String(validate=validate.Length(min=1))
    host = fields.String(validate=validate.Length(min=1, max=255))
    user = fields.String(validate=validate.Length(min=1, max=64))
    password = fields.String(validate=validate.Length(min=1, max=256))
    interface = fields.String(load_default="lanplus",
                              validate=validate.OneOf(["lan", "lanplus"]))
    timeout = fields.Float(load_default=60.0, validate=validate.Range(min=1, max=3600))

    @validates_schema
    def _needs(self, data: dict[str, Any], **_kw: Any) -> None:
        needed = ["command"] if data["agent"] == "command" else ["host", "user", "password"]
        missing = [k for k in needed if k not in data]
        if missing:
            raise ValidationError({k: [f"required by the {data['agent']} agent"]
                                   for k in missing})


class FenceConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    default = fields.Nested(AgentSchema, load_default=None, allow_none=True)
    nodes = fields.Dict(keys=fields.String(), values=fields.Nested(AgentSchema),
                        load_default=dict)


class Fencer:
    """Picks a node's agent and runs it."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        loaded = FenceConfigSchema().load(dict(config or {}))
        self.default: dict[str, Any] | None = loaded["default"]
        self.nodes: dict[str, dict[str, Any]] = loaded["nodes"]

    def agent_for(self, node: str) -> dict[str, Any] | None:
        return self.nodes.get(node, self.default)

    def fence(self, node: str) -> FenceResult:
        agent = self.agent_for(node)
        if agent is None:
            return FenceResult(False, f"no fence agent is configured for {node}")
        if agent["agent"] == "command":
            return _run_command(agent, node)
        return _run_ipmi(agent)


def _run(argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env else None, stdin=subprocess.DEVNULL)


def _run_command(agent: Mapping[str, Any], node: str) -> FenceResult:
    try:
        done = _run([agent["command"], node], timeout=agent["timeout"],
                    env={**os.environ, "HERD_NODE": node})
    except (OSError, subprocess.TimeoutExpired) as e:
        return FenceResult(False, f"fence command failed: {e}")
    if done.returncode == 0:
        return FenceResult(True, f"fence command fenced {node}")
    detail = (done.stderr or done.stdout).strip()[-300:]
    return FenceResult(False, f"fence command exited {done.returncode}: {detail}")


def _run_ipmi(agent: Mapping[str, Any]) -> FenceResult:
    base = ["ipmitool", "-I", agent["interface"], "-H", agent["host"], "-U", agent["user"],
            "-E", "chassis", "power"]
    env = {**os.environ, "IPMI_PASSWORD": agent["password"]}  # -E: not on the command line
    try:
        off = _run([*base, "off"], timeout=agent["timeout"], env=env)
        status = _run([*base, "status"], timeout=agent["timeout"], env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return FenceResult(False, f"ipmitool failed: {e}")
    if "is off" in status.stdout.lower():
        return FenceResult(True, f"{agent['host']}: chassis power is off")
    detail = (off.stderr or status.stderr or status.stdout).strip()[-300:]
    return FenceResult(False, f"{agent['host']}: power not confirmed off: {detail}")
