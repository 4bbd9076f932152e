"""Run the `basemap` console script in this process, with its own exit-code mapping."""

from __future__ import annotations

import sys

import pytest

#: `basemap build` options that read every item of a test catalog (no default period, cloud
#: limit or item count: the tests' catalogs are small and their dates fixed).
EVERY_ITEM = ["--datetime", "../..", "--max-cloud", "100", "--max-items", "0"]


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """`basemap ARGS` through basemap.cli.main: (exit code, stdout, stderr)."""
    from basemap.cli import main

    monkeypatch.setattr(sys, "argv", ["basemap", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
