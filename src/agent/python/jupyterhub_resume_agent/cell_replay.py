"""Re-running recorded cells to rebuild variables that could not be stored (restore step 3)."""

from __future__ import annotations

import builtins
import re
import sys
import types
from dataclasses import dataclass

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class ReplayPlan:
    """Which cells to re-run for a set of names.

    ``start`` is the index of the first cell to re-run (every later cell runs too), or ``None``
    when no recorded cell creates any of the names; ``missing`` lists names no cell creates.
    """

    start: int | None
    missing: list[str]
    creating_cell: dict[str, int]


def plan_replay(cells: list[dict], names: list[str]) -> ReplayPlan:
    """Finds, for each name, the last cell that created or rebound it; the earliest of those starts.

    :param cells: the session's history, oldest first.
    :param names: the variables to rebuild.
    """
    creating: dict[str, int] = {}
    wanted = set(names)
    for index, cell in enumerate(cells):
        for name in (cell.get("created") or []) + (cell.get("rebound") or []):
            if name in wanted:
                creating[name] = index
    missing = [name for name in names if name not in creating]
    start = min(creating.values()) if creating else None
    return ReplayPlan(start, missing, creating)


def _code_names(code: types.CodeType, into: set[str]) -> None:
    into.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, into)


def referenced_names(cells: list[dict], namespace: dict) -> set[str]:
    """Every name the cells could touch, as a generous superset.

    Identifiers are taken from the raw code as text (so ``%time x.append(1)``, whose ``x`` hides
    in a string after transformation, counts), then closed over the global names used by
    notebook functions and classes they mention (``f()`` may mutate a global it names).

    :param cells: the cells to be re-run.
    :param namespace: the user namespace (to look up notebook functions and classes).
    """
    names: set[str] = set()
    for cell in cells:
        names.update(_IDENTIFIER.findall(cell.get("code") or ""))
    queue = list(names)
    seen_code: set[int] = set()
    while queue:
        value = namespace.get(queue.pop())
        functions = []
        if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
            functions.append(value)
        elif isinstance(value, type) and value.__module__ == "__main__":
            for attribute in vars(value).values():
                attribute = getattr(attribute, "__func__", attribute)
                if isinstance(attribute, types.FunctionType):
                    functions.append(attribute)
        for function in functions:
            if id(function.__code__) in seen_code:
                continue
            seen_code.add(id(function.__code__))
            found: set[str] = set()
            _code_names(function.__code__, found)
            for name in found - names:
                names.add(name)
                queue.append(name)
    return names


def _refuse_input(*_args, **_kwargs):
    raise RuntimeError("input() is not available while jupyterhub-resume re-runs cells")


@dataclass
class CellOutcome:
    """What happened when one cell was re-run: its index in the history and its error, if any."""

    index: int
    error: str | None


def replay_cells(shell, cells: list[dict], first_index: int = 0, indices: list[int] | None = None) -> list[CellOutcome]:
    """Re-runs cells in order in the user namespace, outputs captured and discarded.

    Each cell goes through IPython's input transformer (magics and ``!`` work) and is compiled
    with the kernel's own compiler (so tracebacks and ``inspect.getsource`` work for functions
    it defines), then ``exec``-ed. No IPython events fire, so nothing is recorded again. An
    error is noted and the next cell runs. ``input()`` and ``getpass()`` raise instead of
    waiting for a reply nobody will send.

    :param shell: the IPython shell.
    :param cells: the cells to re-run.
    :param first_index: the index of ``cells[0]`` in the history (for the outcomes).
    :param indices: the history index of each cell instead, when they are not consecutive.
    """
    from IPython.utils.capture import capture_output  # noqa: PLC0415 - only needed here

    outcomes: list[CellOutcome] = []
    getpass_module = sys.modules.get("getpass")
    saved_input = builtins.input
    saved_getpass = getattr(getpass_module, "getpass", None) if getpass_module else None
    builtins.input = _refuse_input
    if getpass_module is not None:
        getpass_module.getpass = _refuse_input
    try:
        with capture_output(stdout=True, stderr=True, display=True):
            for offset, cell in enumerate(cells):
                index = indices[offset] if indices is not None else first_index + offset
                try:
                    code = shell.transform_cell(cell.get("code") or "")
                    compiler = shell.compile
                    filename = compiler.cache(code, shell.execution_count, raw_code=cell.get("code") or "")
                    compiled = compiler(code, filename, "exec")
                    exec(compiled, shell.user_global_ns, shell.user_ns)  # noqa: S102 - re-running the user's own cells
                    outcomes.append(CellOutcome(index, None))
                except (Exception, SystemExit) as error:  # noqa: BLE001 - errors are recorded, not raised
                    try:
                        text = str(error)
                    except Exception:
                        text = ""
                    outcomes.append(CellOutcome(index, f"{type(error).__name__}: {text}" if text else type(error).__name__))
    finally:
        builtins.input = saved_input
        if getpass_module is not None and saved_getpass is not None:
            getpass_module.getpass = saved_getpass
    return outcomes
