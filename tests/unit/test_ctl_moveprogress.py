"""The line `herdctl vm migrate --wait` shows while a migration copies (ctl.moveprogress)."""

from __future__ import annotations

from ctl.moveprogress import MIB, progress_line


def test_a_copy_with_disks_shows_bytes_percent_and_rate() -> None:
    line = progress_line({"diskCopied": 64 * MIB, "diskTotal": 224 * MIB,
                          "memoryCopied": 32 * MIB, "memoryTotal": 32 * MIB}, rate=85.4 * MIB)
    assert line == "copied 96/256 MiB (37%) disk 64/224, memory 32/32 · 85 MiB/s"


def test_memory_only_and_no_rate_yet() -> None:
    assert progress_line({"memoryCopied": 10 * MIB, "memoryTotal": 40 * MIB},
                         rate=None) == "copied 10/40 MiB (25%)"


def test_no_figures_no_line_and_never_above_all() -> None:
    assert progress_line({"source": "hv1", "target": "hv2"}, rate=None) is None
    assert progress_line({"diskCopied": 9 * MIB, "diskTotal": 8 * MIB},
                         rate=None).startswith("copied 8/8 MiB (100%)")  # type: ignore[union-attr]
