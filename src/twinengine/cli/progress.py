"""Live step progress on stderr (only when stderr is a terminal).

The scheduler emits ``(event, step path, state)``; :class:`LiveProgress` keeps counts
and the most recent steps and redraws one Rich panel a few times a second.
"""

from __future__ import annotations

import collections
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table


class LiveProgress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.counts: collections.Counter[str] = collections.Counter()
        self.recent: collections.deque[tuple[str, str]] = collections.deque(maxlen=6)
        self.running: dict[str, float] = {}
        self.started = time.monotonic()
        self.live = Live(
            console=console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.run_id: str | None = None

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)  # type: ignore[arg-type]
        done = self.counts["succeeded"] + self.counts["reused"]
        self.console.print(
            f"[dim]{done} step(s) done ({self.counts['reused']} reused), "
            f"{self.counts['failed']} failed, {self.counts['skipped']} skipped "
            f"in {time.monotonic() - self.started:.1f} s[/]"
        )

    def __call__(self, event: str, path: str, state: str) -> None:
        if event == "started":
            self.running[path] = time.monotonic()
        elif event in ("finished", "reused", "skipped"):
            self.running.pop(path, None)
            self.counts["reused" if event == "reused" else state] += 1
            self.recent.append((path, "reused" if event == "reused" else state))
        elif event == "queued":
            self.counts["queued"] += 1
        self.live.update(self._render())

    def _render(self) -> Table:
        table = Table.grid(padding=(0, 1))
        elapsed = time.monotonic() - self.started
        header = (
            f"[bold]{'run ' + self.run_id if self.run_id else 'run'}[/] "
            f"{elapsed:6.1f}s  running [cyan]{len(self.running)}[/]  "
            f"done [green]{self.counts['succeeded'] + self.counts['reused']}[/]  "
            f"failed [red]{self.counts['failed']}[/]  skipped {self.counts['skipped']}"
        )
        table.add_row(header)
        colour = {"succeeded": "green", "failed": "red", "reused": "blue", "skipped": "dim"}
        for path, state in list(self.recent):
            table.add_row(f"  [{colour.get(state, 'white')}]{state:>9}[/] {path}")
        for path in list(self.running)[:4]:
            table.add_row(f"  [cyan]{'running':>9}[/] {path}")
        return table
