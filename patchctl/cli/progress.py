"""The live progress display of scan, deploy, verify and reboot on a terminal.

One line that redraws in place (rich's progress): what runs (the wave and batch for a deploy),
done of total, ok / failed / unreachable so far, hosts per minute and the time left. When the
run ends the line goes away and one summary line stays; the command then prints only the hosts
that were not ok (``-v``: every host). Piped output, ``--json`` and ``-q`` never see it: the
command gets no display then (:meth:`patchctl.cli.app.App.shows_progress`).
"""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from patchctl.render.escape import printable

# How each host status is counted on the line; anything else counts as failed.
_COUNTED = ("ok", "failed", "unreachable")


class LiveProgress:
    """A redrawn progress line for one run of ``verb`` over hosts; use it as a context manager."""

    def __init__(self, console: Console, verb: str, total: int | None = None) -> None:
        self.verb = verb
        self.counts: Counter[str] = Counter()
        self.done = 0
        self.total = total
        self._stage = ""
        self._started = time.monotonic()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        self._task = self._progress.add_task(self._description(), total=self.total, counts=self._counts(), rate="")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._progress.stop()
        if kind is None and self.done:
            self._progress.console.print(self.summary(), markup=False, highlight=False)

    def stage(self, text: str) -> None:
        """What runs now, e.g. ``wave pilot, batch 2 of 5``."""
        self._stage = text
        self._refresh()

    def host(self, status: str, done: int | None = None, total: int | None = None) -> None:
        """One more host answered with ``status``; ``done``/``total`` when the flow counts them."""
        self.counts[status if status in _COUNTED else "failed"] += 1
        self.done = done if done is not None else self.done + 1
        if total is not None:
            self.total = total
        self._refresh()

    def rate(self) -> float:
        """Hosts per minute so far."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return self.done * 60.0 / elapsed

    def summary(self) -> str:
        elapsed = time.monotonic() - self._started
        of = f" of {self.total}" if self.total is not None else ""
        return (
            f"{self.verb}: {self.done}{of} hosts in {_duration(elapsed)} ({self.rate():.0f} hosts/min): "
            f"{self._counts()}"
        )

    def _description(self) -> str:
        return printable(f"{self.verb} {self._stage}".strip())

    def _counts(self) -> str:
        return ", ".join(f"{self.counts[s]} {s}" for s in _COUNTED)

    def _refresh(self) -> None:
        if self._task is None:
            return
        self._progress.update(
            self._task,
            description=self._description(),
            completed=self.done,
            total=self.total,
            counts=self._counts(),
            rate=f"{self.rate():.0f} hosts/min" if self.done else "",
        )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"
