"""Progress of long work, reported to one observer the caller passes in (as mapchete's commands
do): the engine says what it does (:meth:`Progress.stage`, then :meth:`Stage.advance`), the CLI
decides how it is shown (:class:`Bars`: tqdm on stderr), and a library call is silent by default
(:data:`SILENT`)."""

from __future__ import annotations

from typing import Protocol

from tqdm import tqdm


class Stage(Protocol):
    """One stage of work of a known size."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units are done."""

    def close(self) -> None:
        """The stage is over."""


class Progress(Protocol):
    """Where a long-running function reports its stages."""

    def stage(self, name: str, total: int, unit: str) -> Stage:
        """A new stage of ``total`` units (e.g. "blocks", 12, "block")."""


class _Quiet:
    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class Silent:
    """Reports nothing."""

    def stage(self, name: str, total: int, unit: str) -> Stage:
        return _Quiet()


class _Bar:
    def __init__(self, name: str, total: int, unit: str) -> None:
        self._bar = tqdm(total=total, desc=name, unit=unit)

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class Bars:
    """A tqdm bar per stage on stderr (the CLI's; ``--quiet`` uses :data:`SILENT`)."""

    def stage(self, name: str, total: int, unit: str) -> Stage:
        return _Bar(name, total, unit)


SILENT: Progress = Silent()


def shown(show: bool) -> Progress:
    """:class:`Bars` when ``show``, else :data:`SILENT` (the CLI's ``--quiet``)."""
    return Bars() if show else SILENT
