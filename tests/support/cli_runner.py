"""Run the `basemap` console script in this process, with its own exit-code mapping."""

from __future__ import annotations

import sys

import pytest


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """`basemap ARGS` through basemap.cli.main: (exit code, stdout, stderr)."""
    from basemap.cli import main

    monkeypatch.setattr(sys, "argv", ["basemap", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
