"""Write the latest benchmark results into README.md (between the bench markers).

Each benchmark saves `bench/results/<name>.md` (its table, headed by date and machine);
this puts them, in a fixed order, into the README so that it always shows the latest.
Called by `make bench` after the benchmarks, or alone: `python -m bench.report`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
ORDER = [("store_create", "Store: creating VMs (issue #2)"),
         ("informer", "Watched cache (issue #2)"),
         ("node", "Node daemon (issue #3)"),
         ("controllers", "Cluster controllers (issue #4)"),
         ("api", "REST API (issue #5)"),
         ("migration", "Live migration on real QEMU hosts (issue #7)"),
         ("chaos", "Fault suite (issue #8)"),
         ("chaos_qemu", "Fault suite on real QEMU hosts (issue #8)"),
         ("network", "Client networks (issue #14)"),
         ("volume", "Volume upload and download on a real QEMU host (issue #15)"),
         ("storage", "Live migration with storage copy on real QEMU hosts (issue #15)"),
         ("metrics", "Node metrics (issue #16)"),
         ("console", "Console round trip on a real QEMU host (issue #16)"),
         ("ha", "HA planners at 100 nodes: rules, accounting, rebalance (issue #17)"),
         ("ui", "Web console with 10,000 VMs in Chromium (issue #18)")]


def section() -> str:
    parts = []
    for name, title in ORDER:
        path = RESULTS / f"{name}.md"
        if path.exists():
            parts.append(f"#### {title}\n\n{path.read_text().strip()}\n")
    return "\n".join(parts)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n{section()}\n{END}{tail}")
    print(f"README.md: {len(ORDER)} benchmark tables updated")


if __name__ == "__main__":
    main()
