"""The ``restore`` command (and the restore at kernel start): the steps in the protocol, in order."""

from __future__ import annotations

import copy
import importlib
import time

from .agent_error import AgentError
from .cell_replay import plan_replay, referenced_names, replay_cells
from .serializer import load
from .user_namespace import user_variables


def _reason(error: BaseException) -> str:
    if isinstance(error, AgentError):
        return error.message
    try:
        text = str(error)
    except Exception:
        text = ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _load_group(source, group: dict) -> dict:
    contents = source.read(group["key"], group["bytes"], group["sha256"])
    if contents.serializer != group["serializer"]:
        raise AgentError(
            "RESUME_ERR_AGENT_BLOB_CORRUPT",
            f"blob {group['key']!r} says {contents.serializer}, the manifest says {group['serializer']}",
            "The blob does not belong to this manifest.",
        )
    # The buffers become the arrays' memory: numpy data is read once and never copied again.
    values = load(contents.serializer, contents.pickle_data, contents.buffers)
    if not isinstance(values, dict) or set(values) != set(group["names"]):
        raise AgentError(
            "RESUME_ERR_AGENT_BLOB_CORRUPT",
            f"blob {group['key']!r} does not hold exactly the variables {', '.join(group['names'])}",
            "The blob does not belong to this manifest.",
        )
    return values


def restore(shell, manifest: dict, cells: list[dict], source, plan: dict | None = None) -> dict:
    """Brings a checkpoint's variables back into this kernel.

    With a ``plan`` (the service's replication plan, see ``restore_by_plan``) only the cells the
    plan names are re-run, with stored groups loaded at their place in the history. Without one
    (an older service, ``verify``), the steps below.

    1. re-import ``imports``; 2. load each group (a bad or missing blob fails only its
    variables) and bind its names; 3. re-run history from the earliest cell that created a
    ``recompute`` variable; 4. set the execution counter. Stored values always win: during the
    re-run, a stored variable that a re-run cell creates is unbound (the cell makes its own),
    and one that a re-run cell may touch is a deep copy, so in-place changes made by re-run
    cells never reach the stored values; afterwards every stored name is bound to its loaded
    value again, and names the re-run made that the checkpoint did not have are removed.

    :param shell: the IPython shell.
    :param manifest: a validated Manifest.
    :param cells: the session's history up to the checkpoint, oldest first.
    :param source: a ``DirTarget`` or ``HttpTarget`` holding the blobs.
    :param plan: ``{"rerun", "load_after", "fallback"}`` (agent protocol, "Restore plan").
    :returns: the RestoreReport.
    """
    if plan is not None:
        return restore_by_plan(shell, manifest, cells, source, plan)
    t_start = time.perf_counter()
    namespace = shell.user_ns
    status: dict[str, dict] = {}
    _import_modules(namespace, manifest, status)

    loaded_groups: list[dict] = []
    for group in manifest["groups"]:
        try:
            values = _load_group(source, group)
        except Exception as error:  # noqa: BLE001 - one bad group fails only its variables
            for name in group["names"]:
                status[name] = {"name": name, "status": "failed", "error": _reason(error)}
            continue
        namespace.update(values)
        loaded_groups.append(values)
        for name in group["names"]:
            status[name] = {"name": name, "status": "stored"}

    recompute = [item["name"] for item in manifest["recompute"]]
    if recompute:
        _rebuild(shell, recompute, cells, loaded_groups, manifest, status)

    shell.execution_count = manifest["execution_count"]
    return _report(manifest, status, t_start)


def restore_by_plan(shell, manifest: dict, cells: list[dict], source, plan: dict) -> dict:
    """Restores by the service's replication plan.

    1. Re-import ``imports``. 2. Read every stored group's blob (not yet bound). A group whose
    blob cannot be loaded (missing, damaged, a library that changed between servers) is rebuilt
    instead: the cells ``fallback`` names for it join the re-run. 3. Walk the history in order:
    re-run each planned cell (outputs discarded, errors reported), and bind each loaded group
    right after the cell ``load_after`` names (-1: before any re-run). A group is bound at the
    point where the recorded session last changed it, so re-run cells that read it see it as it
    was, and a re-run cell that made an older version of it cannot overwrite it. 4. Remove what the
    re-run made that the checkpoint did not have; set the execution counter.

    :param plan: ``{"rerun": [history index…], "load_after": {key: index}, "fallback": {key: [index…]}}``.
    :returns: the RestoreReport, with ``rerun`` (each re-run cell's index and error, or ``None``)
        and ``timings`` (``load_s``, ``rerun_s``, ``bytes_loaded``, ``blobs_loaded``: what the
        service learns its read bandwidth and per-blob time from).
    """
    t_start = time.perf_counter()
    namespace = shell.user_ns
    status: dict[str, dict] = {}
    _import_modules(namespace, manifest, status)

    loaded: dict[str, dict] = {}
    rerun = set(plan["rerun"])
    not_loaded: list[str] = []
    bytes_loaded = 0
    blobs_loaded = 0
    t_load = time.perf_counter()
    for group in manifest["groups"]:
        try:
            loaded[group["key"]] = _load_group(source, group)
            bytes_loaded += group["bytes"]
            blobs_loaded += 1
        except Exception as error:  # noqa: BLE001 - one bad group is rebuilt, or fails only its variables
            not_loaded.extend(group["names"])
            fallback = plan["fallback"].get(group["key"])
            note = f"loading it failed ({_reason(error)})"
            for name in group["names"]:
                status[name] = {"name": name, "status": "failed", "error": note if fallback is not None else _reason(error)}
            if fallback is not None:
                rerun.update(fallback)

    load_s = time.perf_counter() - t_load
    before = set(user_variables(shell))
    t_rerun = time.perf_counter()
    binds: dict[int, list[dict]] = {}
    for key, values in loaded.items():
        binds.setdefault(plan["load_after"].get(key, -1), []).append(values)
    for values in binds.pop(-1, []):
        namespace.update(values)
    errors: dict[int, str | None] = {}
    batch: list[int] = []
    for index in sorted(rerun | set(binds)):
        if index in rerun and 0 <= index < len(cells):
            batch.append(index)
        if index in binds:
            errors.update(_replay(shell, cells, batch))
            batch = []
            for values in binds[index]:
                namespace.update(values)
    errors.update(_replay(shell, cells, batch))
    rerun_s = time.perf_counter() - t_rerun

    stored_names = {name for values in loaded.values() for name in values}
    for name in stored_names:
        status[name] = {"name": name, "status": "stored"}
    known = {item["name"] for item in manifest.get("variables") or []}
    known |= {name for group in manifest["groups"] for name in group["names"]}
    known |= {item["name"] for item in manifest["imports"]} | {item["name"] for item in manifest["recompute"]}
    for name in set(user_variables(shell)) - before - known:
        namespace.pop(name, None)  # the checkpoint did not have it
    failed_cells = "; ".join(f"cell {index + 1} of the history: {error}" for index, error in sorted(errors.items()) if error)
    for name in [item["name"] for item in manifest["recompute"]] + not_loaded:
        if name in namespace:
            entry = {"name": name, "status": "recomputed"}
            if status.get(name, {}).get("status") == "failed":
                entry["error"] = f"{status[name]['error']}; re-running its cells rebuilt it"
            status[name] = entry
        else:
            why = f"the re-run did not make it ({failed_cells})" if failed_cells else "the re-run did not make it"
            previous = status.get(name, {}).get("error")
            status[name] = {"name": name, "status": "failed", "error": f"{previous}; {why}" if previous else why}
    shell.execution_count = manifest["execution_count"]
    report = _report(manifest, status, t_start)
    report["rerun"] = [{"index": index, "error": errors.get(index)} for index in sorted(errors)]
    report["timings"] = {
        "load_s": round(load_s, 6),
        "rerun_s": round(rerun_s, 6),
        "bytes_loaded": bytes_loaded,
        "blobs_loaded": blobs_loaded,
    }
    return report


def _replay(shell, cells: list[dict], indices: list[int]) -> dict[int, str | None]:
    if not indices:
        return {}
    outcomes = replay_cells(shell, [cells[index] for index in indices], indices=indices)
    return {outcome.index: outcome.error for outcome in outcomes}


def _import_modules(namespace: dict, manifest: dict, status: dict) -> None:
    for item in manifest["imports"]:
        try:
            namespace[item["name"]] = importlib.import_module(item["module"])
            status[item["name"]] = {"name": item["name"], "status": "imported"}
        except Exception as error:  # noqa: BLE001 - one failed import fails only that name
            status[item["name"]] = {"name": item["name"], "status": "failed", "error": _reason(error)}


def _report(manifest: dict, status: dict, t_start: float) -> dict:
    """The RestoreReport: every variable the manifest lists gets a line, even one no step accounted for."""
    for item in manifest.get("variables") or []:
        if item["name"] not in status:
            status[item["name"]] = {
                "name": item["name"],
                "status": "failed",
                "error": "the manifest lists it but no group, import or recompute entry has it",
            }
    order = [item["name"] for item in manifest.get("variables") or []]
    position = {name: index for index, name in enumerate(order)}
    report_variables = sorted(status.values(), key=lambda entry: position.get(entry["name"], len(order)))
    return {
        "checkpoint_id": manifest["checkpoint_id"],
        "duration_s": round(time.perf_counter() - t_start, 6),
        "execution_count": manifest["execution_count"],
        "variables": report_variables,
    }


def _rebuild(shell, names: list[str], cells: list[dict], loaded_groups: list[dict], manifest: dict, status: dict) -> None:
    namespace = shell.user_ns
    plan = plan_replay(cells, names)
    for name in plan.missing:
        status[name] = {"name": name, "status": "failed", "error": "no recorded cell creates it, so it cannot be recomputed"}
    if plan.start is None:
        return
    to_run = cells[plan.start :]
    made_by_rerun = {name for cell in to_run for name in (cell.get("created") or []) + (cell.get("rebound") or [])}
    touched = referenced_names(to_run, namespace)
    for values in loaded_groups:
        for name in values:
            if name in made_by_rerun:
                namespace.pop(name, None)
        kept = {name: value for name, value in values.items() if name not in made_by_rerun}
        if kept and touched.intersection(kept):
            try:
                namespace.update(copy.deepcopy(kept))
            except Exception:  # noqa: BLE001 - an object deepcopy refuses stays shared; rare
                pass
    before = set(user_variables(shell))
    outcomes = replay_cells(shell, to_run, plan.start)
    errors = {outcome.index: outcome.error for outcome in outcomes if outcome.error}

    for values in loaded_groups:
        namespace.update(values)  # stored values win
    known = {item["name"] for item in manifest.get("variables") or []} | set(names)
    known |= {name for group in manifest["groups"] for name in group["names"]}
    known |= {item["name"] for item in manifest["imports"]}
    for name in set(user_variables(shell)) - before - known:
        namespace.pop(name, None)  # the checkpoint did not have it (e.g. deleted later in a cell the re-run skipped)

    for name, entry in list(status.items()):
        # A group that failed to load, whose variables the re-run made anyway: they are back.
        if entry["status"] == "failed" and name in made_by_rerun and name in namespace and name not in names:
            status[name] = {
                "name": name,
                "status": "recomputed",
                "error": f"loading it failed ({entry.get('error')}); the re-run rebuilt it",
            }
    for name in names:
        if name in plan.missing:
            continue
        if name in namespace:
            status[name] = {"name": name, "status": "recomputed"}
        else:
            index = plan.creating_cell[name]
            error = errors.get(index)
            detail = f"re-running the cell that created it failed: {error}" if error else "the re-run did not recreate it"
            status[name] = {"name": name, "status": "failed", "error": detail}
