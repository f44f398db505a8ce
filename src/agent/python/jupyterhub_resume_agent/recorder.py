"""Records every cell the user runs: code, timing, outcome, which names it bound or removed, and
what it read and changed in place (``cell_dependencies``)."""

from __future__ import annotations

import threading
import time
from typing import Callable

from .cell_dependencies import CellDependencies
from .identity import utc_timestamp
from .kernel_log import log_exception
from .user_namespace import is_user_binding, namespace_ids


class Recorder:
    """Hooks IPython's ``pre_run_cell``/``post_run_cell`` and turns each cell into a Cell record.

    Created, deleted and rebound names come from comparing ``id()`` of every binding before and
    after the cell: one dict comprehension over the namespace per hook and one pass to compare,
    no deep walks and no references kept, about 0.1 ms for a few hundred names. Only names
    that changed are checked for being user variables. Reads, in-place changes and co-variable
    groups come from ``CellDependencies`` (static analysis before the cell, fingerprints of the
    variables the cell could reach before and after it).

    Silent executes (the service's commands) fire no hooks and are never recorded. A cell that
    runs ``get_ipython().run_cell(...)`` is recorded once, as the outer cell: re-running it
    re-runs the inner one.

    :param shell: the IPython shell.
    :param on_record: called with each finished record (e.g. to queue it for upload).
    :param before_cell: called first thing in ``pre_run_cell`` (e.g. to print a restore summary).
    """

    def __init__(
        self,
        shell,
        on_record: Callable[[dict], None] | None = None,
        before_cell: Callable[[], None] | None = None,
    ) -> None:
        self.shell = shell
        self._on_record = on_record
        self._before_cell = before_cell
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._depth = 0
        self._before: dict[str, int] = {}
        self._code = ""
        self._cell_id: str | None = None
        self._started_at = ""
        self._t0 = 0.0
        self._pre_hook_s = 0.0
        #: Seconds spent inside the two hooks for the last cell (agent overhead, not the cell's).
        self.last_hook_s = 0.0
        self._registered = False
        #: Works out ``read``, ``read_all``, ``modified`` and ``groups`` of each cell.
        self.dependencies = CellDependencies(shell)

    def import_history(self, records: list[dict]) -> None:
        """Puts records of cells that ran before the agent was loaded first (seq 1..k).

        Only before any cell was recorded: later cells then continue from k + 1.
        """
        with self._lock:
            if self._records:
                raise RuntimeError("cells were already recorded")
            self._records[:0] = records

    def register(self) -> None:
        """Starts recording (idempotent)."""
        if not self._registered:
            self.shell.events.register("pre_run_cell", self.pre_run_cell)
            self.shell.events.register("post_run_cell", self.post_run_cell)
            self._registered = True

    def unregister(self) -> None:
        """Stops recording (idempotent)."""
        if self._registered:
            self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
            self.shell.events.unregister("post_run_cell", self.post_run_cell)
            self._registered = False

    @property
    def records(self) -> list[dict]:
        """A copy of every record so far, in order."""
        with self._lock:
            return list(self._records)

    @property
    def count(self) -> int:
        """How many cells were recorded."""
        with self._lock:
            return len(self._records)

    def pre_run_cell(self, info) -> None:
        """IPython hook: remembers the namespace and the start time."""
        hook_t0 = time.perf_counter()
        self._depth += 1
        if self._depth > 1:
            return
        if self._before_cell is not None:
            try:
                self._before_cell()
            except Exception as error:  # noqa: BLE001 - must not break the user's cell
                log_exception("could not prepare for a cell", error)
        self._code = getattr(info, "raw_cell", "") or ""
        # The notebook cell's id, which JupyterLab sends with each execute request (metadata
        # ``cellId``): the service looks the cell's tags up by it (a kernel never sees tags).
        cell_id = getattr(info, "cell_id", None)
        self._cell_id = cell_id if isinstance(cell_id, str) and cell_id else None
        try:
            self._before = namespace_ids(self.shell)
        except Exception as error:  # noqa: BLE001 - IPython would print a callback traceback into the cell
            log_exception("could not read the namespace before a cell", error)
            self._before = {}
        self.dependencies.before_cell(info, self._before)  # never raises
        self._started_at = utc_timestamp()
        self._t0 = time.perf_counter()
        self._pre_hook_s = self._t0 - hook_t0

    def post_run_cell(self, result) -> None:
        """IPython hook: diffs the namespace and emits the cell's record."""
        t_end = time.perf_counter()
        if self._depth == 0:  # loaded in the middle of a cell: nothing was remembered
            return
        self._depth -= 1
        if self._depth > 0:
            return
        try:
            self._record(result, t_end)
        except Exception as error:  # noqa: BLE001 - IPython would print a callback traceback into the cell
            log_exception("could not record a cell", error)

    def _record(self, result, t_end: float) -> None:
        after = namespace_ids(self.shell)
        before = self._before
        self._before = {}
        created: list[str] = []
        rebound: list[str] = []
        for name, ident in after.items():
            previous = before.get(name)
            if previous != ident and is_user_binding(self.shell, name, ident):
                (created if previous is None else rebound).append(name)
        deleted = [name for name, ident in before.items() if name not in after and is_user_binding(self.shell, name, ident)]
        error = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
        dependencies = self.dependencies.after_cell(result, after, created, deleted, rebound)  # never raises
        with self._lock:
            seq = len(self._records) + 1
            record = {
                "seq": seq,
                "execution_count": getattr(result, "execution_count", None),
                "code": self._code,
                "cell_id": self._cell_id,
                "started_at": self._started_at,
                "duration_s": round(t_end - self._t0, 6),
                "status": "error" if error is not None else "ok",
                "error": None if error is None else _error_fields(error),
                "created": created,
                "deleted": deleted,
                "rebound": rebound,
                **dependencies,
            }
            self._records.append(record)
        self.last_hook_s = self._pre_hook_s + (time.perf_counter() - t_end)
        if self._on_record is not None:
            self._on_record(record)


def _error_fields(error: BaseException) -> dict:
    """``{"ename", "evalue"}`` of an exception whose ``__str__`` may itself fail."""
    try:
        evalue = str(error)
    except Exception:
        evalue = f"<unprintable {type(error).__name__}>"
    return {"ename": type(error).__name__, "evalue": evalue}
