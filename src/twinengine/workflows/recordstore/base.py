"""The record store interface: the writes and few reads a running workflow makes.

:class:`~twinengine.workflows.records.RunRecorder` decides *what* to write and when;
a :class:`RecordStore` writes it — runs, steps (new rows and partial updates, with the
run's own change in the same transaction), cache look-ups and the rows of a run's PROV
document. :func:`update_shapes` groups partial step updates by the columns they set,
which both backends need to write them in batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class RecordStore(ABC):
    """The writes and few reads a running workflow makes."""

    @abstractmethod
    def insert_run(self, values: dict[str, Any]) -> None: ...

    @abstractmethod
    def update_run(self, run_id: str, values: dict[str, Any], bump_attempt: bool = False) -> None:
        """Set ``values`` on the run (and add one to ``attempt`` when asked)."""

    @abstractmethod
    def cancel_requested(self, run_id: str) -> bool: ...

    @abstractmethod
    def write_steps(
        self,
        new_rows: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        run: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """Insert full step rows and apply partial updates (each with ``id``), atomically;
        ``run``: ``(run id, values)`` set on the run in the same transaction."""

    @abstractmethod
    def step_ids(self, run_id: str) -> set[str]: ...

    @abstractmethod
    def succeeded_steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Succeeded steps of the run with a cache key: ``{key: {id, outputs}}``."""

    @abstractmethod
    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        """The newest succeeded step of any run with ``cache_key``: ``{id, outputs}``."""

    @abstractmethod
    def run_row(self, run_id: str) -> dict[str, Any] | None:
        """The run's row as a dict (JSON decoded), or None."""

    @abstractmethod
    def run_exists(self, run_id: str) -> bool:
        """Whether the run has a record (without reading it)."""

    @abstractmethod
    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's step rows as dicts (JSON decoded)."""

    @abstractmethod
    def insert_rows(self, tables: dict[str, list[dict[str, Any]]], keep_existing: set[str]) -> None:
        """Insert rows into several tables in one transaction; in ``keep_existing`` tables
        a row whose primary key is already there is skipped."""

    def replace_run_provenance(self, run_id: str, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Store a run's PROV document in place of the one an earlier attempt stored."""
        self.delete_run_provenance(run_id)
        self.insert_rows(tables, keep_existing={"prov_elements", "prov_members"})

    @abstractmethod
    def delete_run_provenance(self, run_id: str) -> None:
        """Remove the captured PROV documents of a run (elements stay: they are shared)."""

    def close(self) -> None:  # noqa: B027 - optional
        pass


def update_shapes(updates: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Group partial updates by the columns they set (an executemany needs one shape)."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in updates:
        cols = tuple(sorted(k for k in row if k != "id"))
        if cols:
            shapes.setdefault(cols, []).append(row)
    return shapes
