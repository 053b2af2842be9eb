"""report.safe_name: names from outside (paths, blob names) printed safely."""

from __future__ import annotations

from uploader.report import safe_name


def test_controls_backslashes_and_undecodable_bytes_are_escaped() -> None:
    hostile = "a\\b\nFAKE LINE\r\x1b[31m\udcff.csv"
    shown = safe_name(hostile)
    assert shown == "a\\\\b\\x0aFAKE LINE\\x0d\\x1b[31m\\udcff.csv"
    assert shown.isprintable()
    shown.encode("ascii")  # nothing left that an ASCII log cannot hold


def test_printable_names_are_unchanged_and_long_ones_cut() -> None:
    assert safe_name("incoming/départs/2026-11-21.csv") == "incoming/départs/2026-11-21.csv"
    assert safe_name("x" * 1000, limit=10) == "x" * 10 + "..."
