"""Cells that ran before the agent was loaded, rebuilt from IPython's own input history.

When the service injects the agent into a kernel that already ran cells (or the user runs
``%load_ext`` late), those cells are not lost from the history: IPython keeps every input of
the session (``history_manager.input_hist_raw``, the raw text ``In`` shows transformed). Each
becomes a record whose effects and timing are unknown (``effects_known``/``timing_known``
false, ``read_all`` true, no names, ``duration_s`` 0): a reader treats it as reading and
possibly writing everything before it. The cell that loads the agent is one of them: it was
stored before it ran, and the hooks registered during it do not see its start.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .identity import utc_timestamp
from .kernel_log import log_exception


def _session_start(history) -> str:
    """When IPython's session started (the best time we have for its early cells)."""
    try:
        start = history.get_session_info(0)[1]
        if isinstance(start, datetime):
            # IPython stores local naive times; astimezone() reads a naive time as local.
            return utc_timestamp(start.astimezone(timezone.utc))
    except Exception:  # noqa: BLE001 - no database (history disabled): use "now"
        pass
    return utc_timestamp()


def rebuild_records(shell) -> list[dict]:
    """One record per input IPython stored before now, oldest first, ``seq`` 1..k; never raises.

    :param shell: the IPython shell.
    """
    try:
        history = shell.history_manager
        inputs = list(getattr(history, "input_hist_raw", None) or [])[1:]  # entry 0 is a placeholder
        if not inputs:
            return []
        exceptions = getattr(history, "exceptions", None) or {}
        started_at = _session_start(history)
    except Exception as error:  # noqa: BLE001 - the kernel works without the early cells
        log_exception("could not read IPython's input history", error)
        return []
    records = []
    for index, code in enumerate(inputs, start=1):
        failure = exceptions.get(index) if isinstance(exceptions, dict) else None
        error = None
        if isinstance(failure, dict) and "ename" in failure:
            error = {"ename": str(failure["ename"]), "evalue": str(failure.get("evalue", ""))}
        records.append(
            {
                "seq": index,
                "execution_count": index,
                "code": code if isinstance(code, str) else str(code),
                "started_at": started_at,
                "duration_s": 0,
                "status": "error" if error else "ok",
                "error": error,
                "created": [],
                "deleted": [],
                "rebound": [],
                "read": [],
                "read_all": True,
                "modified": [],
                "groups": [],
                "group_costs": [],
                "effects_known": False,
                "timing_known": False,
            }
        )
    return records
