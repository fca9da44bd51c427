"""Firewall rules are parsed by nftables itself before they are stored (issue #14): each
rule goes into a base chain of a scratch table (`inet`, hook `forward`, where the
gateway applies them) in ONE `nft --check -f -` run, inside a fresh user and network
namespace (`unshare --user --map-root-user --net`: no privileges needed, nothing can
touch the host's ruleset). nft's errors name lines; each is mapped back to its rule.

`rule_errors` runs off the event loop (an asyncio subprocess with a deadline). Called by
`server.network.handlers` and `server.network.parts`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Sequence

from server.errors import ApiError

TIMEOUT = 10.0
LINES_PER_RULE = 4  # "chain rN {", the hook line, the rule, "}"
_LINE = re.compile(r"^[^:\n]*:(\d+):[\d-]+: (Error: .*)$", re.M)


def ruleset(rules: Sequence[str]) -> str:
    """The scratch table holding each rule in a base chain of its own."""
    chains = "".join(
        f" chain r{i} {{\n  type filter hook forward priority 0; policy accept;\n"
        f"  {rule}\n }}\n" for i, rule in enumerate(rules))
    return f"table inet herdcheck {{\n{chains}}}\n"


def _index_of(line: int) -> int:
    return (line - 2) // LINES_PER_RULE


def _command() -> list[str]:
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if nft is None:
        raise ApiError(503, "unavailable", "nftables (nft) is not installed on this API "
                       "host: firewall rules cannot be checked")
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, "--user", "--map-root-user", "--net", nft, "--check", "-f", "-"]


async def _run(text: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *_command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        _out, err = await asyncio.wait_for(proc.communicate(text.encode()), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ApiError(503, "unavailable", "nft --check did not answer in time") from None
    return proc.returncode or 0, err.decode(errors="replace")


async def rule_errors(rules: Sequence[str]) -> dict[int, list[str]]:
    """nft's complaints about each rule, by the rule's index (empty: all parse)."""
    if not rules:
        return {}
    code, err = await _run(ruleset(rules))
    if code == 0:
        return {}
    found: dict[int, list[str]] = {}
    for match in _LINE.finditer(err):
        index = _index_of(int(match.group(1)))
        if 0 <= index < len(rules):
            found.setdefault(index, []).append(f"nft: {match.group(2)[7:]}")
    if not found:  # an error nft did not place on a line: blame no rule in particular
        first = err.strip().splitlines()[0] if err.strip() else f"exit status {code}"
        raise ApiError(422, "invalid", f"nft refused the rules: {first[:200]}")
    return found
