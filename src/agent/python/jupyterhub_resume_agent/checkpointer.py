"""The ``checkpoint`` command: classify the user's variables, group, serialize, write the blobs."""

from __future__ import annotations

import sys
import time
import types

from .array_views import view_roots
from .blob_format import blob_parts, hash_parts
from .change_tracker import ChangeTracker
from .object_links import LinkFilter, group_names
from .protocol import PROTOCOL_VERSION
from .serializer import NotSerializable, Pickled, dump, with_code_bound
from .user_namespace import namespace_ids, type_name, user_variables


def _module_import(value: types.ModuleType) -> str | None:
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and sys.modules.get(name) is value:
        return name
    return None


def checkpoint(
    shell,
    checkpoint_id: str,
    target,
    planned_recompute: list[str] | None = None,
    base: dict | None = None,
    changes: ChangeTracker | None = None,
) -> dict:
    """Saves the user's variables to ``target`` and describes how each comes back.

    Modules become ``imports``. Everything else is pickled variable by variable (protocol 5,
    out-of-band buffers; dill where pickle cannot), then grouped by shared objects (union-find
    over memo ids), and each group is written as one blob holding one pickle of a dict, so
    ``b is a`` survives. A variable alone in its group reuses its first pickle, and so does one
    whose group adds only notebook classes and functions its pickle already carries (``points``
    with ``Point``, see ``serializer.with_code_bound``). A variable that cannot be serialized,
    and every variable it shares objects with, is listed in ``recompute``.

    Incremental: a group with exactly the names of a group of ``base`` is not written again
    when ``changes`` says none of its members changed since ``base`` was written or restored
    here, or when its bytes turn out to be the same (same size, same sha256: a variable the
    recorder counted as modified only because a cell read it). Its manifest entry then carries
    ``stored_in``: the checkpoint and key that hold the blob (never a chain: a blob ``base``
    itself reused points at its original).

    :param shell: the IPython shell.
    :param checkpoint_id: echoed in the manifest.
    :param target: a ``DirTarget`` or ``HttpTarget``.
    :param planned_recompute: names the service's plan rebuilds from history instead of storing
        (their groups are recomputed with them).
    :param base: ``{"checkpoint_id", "groups"}`` of the session's last complete checkpoint.
    :param changes: the recorder's ``ChangeTracker``; this checkpoint is marked in it once written.
    :returns: the Manifest.
    :raises AgentError: when a blob cannot be written (the checkpoint is then unusable).
    """
    t_start = time.perf_counter()
    ids_now = namespace_ids(shell)
    base_id = base["checkpoint_id"] if base else None
    base_groups = {tuple(sorted(group["names"])): group for group in (base or {}).get("groups") or ()}
    planned = set(planned_recompute or ())
    variables = user_variables(shell)
    imports: list[dict] = []
    recompute: dict[str, str] = {}
    how: dict[str, str] = {}
    candidates: dict[str, object] = {}
    for name, value in variables.items():
        if isinstance(value, types.ModuleType):
            module = _module_import(value)
            if module is not None:
                imports.append({"name": name, "module": module})
                how[name] = "import"
            else:
                recompute[name] = "a module that cannot be imported by name"
            continue
        candidates[name] = value

    roots = view_roots(candidates.values())
    link_filter = LinkFilter(shell.user_ns)
    pickled: dict[str, Pickled] = {}
    links: dict[str, set[int]] = {}
    # Memo objects stay referenced until grouping is done: a freed temporary's id could be
    # reused by another variable's temporary and link two unrelated variables.
    keep_alive: list[list] = []
    for name, value in candidates.items():
        try:
            result = dump({name: value}, roots)
            pickled[name] = result
            links[name] = link_filter.linking_ids(result.memo_objects, value)
        except NotSerializable as error:
            recompute[name] = str(error)
            keep_alive.append(error.memo_objects)
            links[name] = link_filter.linking_ids(error.memo_objects, value)
    for name in planned:
        if name in candidates and name not in recompute:
            recompute[name] = "the checkpoint plan rebuilds it from history"

    groups: list[dict] = []
    serialize_s = time.perf_counter() - t_start
    upload_s = 0.0
    grouped = group_names(list(candidates), links)
    keep_alive.clear()
    for members in grouped:
        blocked = [name for name in members if name in recompute]
        if blocked:
            for name in members:
                if name not in recompute:
                    recompute[name] = f"shares objects with {blocked[0]!r}, which is rebuilt from history"
            continue
        previous = base_groups.get(tuple(sorted(members)))
        if previous is not None and changes is not None and changes.unchanged_since(base_id, members, ids_now):
            groups.append(_reused(f"g{len(groups)}", members, previous, base_id))
            for name in members:
                how[name] = "stored"
                pickled.pop(name, None)
            continue
        t_serialize = time.perf_counter()
        result = pickled[members[0]] if len(members) == 1 else _with_its_code(members, candidates, pickled)
        if result is None:
            prefer = "dill" if any(pickled[name].all_dill for name in members) else "pickle"
            try:
                result = dump({name: candidates[name] for name in members}, roots, prefer)
            except NotSerializable as error:
                for name in members:
                    recompute[name] = f"its group cannot be serialized together: {error}"
                continue
        parts, total = blob_parts(result.serializer, result.data, result.buffers)
        key = f"g{len(groups)}"
        if _same_bytes(previous, result.serializer, parts, total):
            serialize_s += time.perf_counter() - t_serialize
            groups.append(_reused(key, members, previous, base_id))
        else:
            t_write = time.perf_counter()
            serialize_s += t_write - t_serialize
            nbytes, sha256 = target.write(key, parts, total)
            upload_s += time.perf_counter() - t_write
            groups.append(
                {"key": key, "names": list(members), "serializer": result.serializer, "bytes": nbytes, "sha256": sha256}
            )
        for name in members:
            how[name] = "stored"
            pickled.pop(name, None)  # free what is written as soon as possible

    if changes is not None:
        changes.mark(checkpoint_id, ids_now)
    for name in recompute:
        how[name] = "recompute"
    order = {name: index for index, name in enumerate(variables)}
    return {
        "checkpoint_id": checkpoint_id,
        "protocol": PROTOCOL_VERSION,
        "execution_count": int(shell.execution_count),
        "groups": groups,
        "imports": imports,
        "recompute": [
            {"name": name, "type": type_name(variables[name]), "reason": reason}
            for name, reason in sorted(recompute.items(), key=lambda item: order[item[0]])
        ],
        "variables": [{"name": name, "type": type_name(value), "how": how[name]} for name, value in variables.items()],
        "timings": {"serialize_s": round(serialize_s, 6), "upload_s": round(upload_s, 6)},
    }


def _with_its_code(members: list[str], candidates: dict, pickled: dict[str, Pickled]) -> Pickled | None:
    """A group's dump made from one member's: the others are notebook code its pickle already carries.

    ``None`` when no member's pickle carries all the others (the group is pickled as a whole).
    """
    for name in members:
        if pickled[name].notebook_code:
            others = {other: candidates[other] for other in members if other != name}
            result = with_code_bound(pickled[name], others)
            if result is not None:
                return result
    return None


def _same_bytes(previous: dict | None, serializer: str, parts: list, total: int) -> bool:
    """Whether a group's blob would be byte for byte the one ``previous`` describes.

    The size is compared first: hashing is only worth it when a change could be a false alarm.
    """
    if previous is None or previous["bytes"] != total or previous["serializer"] != serializer:
        return False
    return hash_parts(parts).hexdigest() == previous["sha256"]


def _reused(key: str, members, previous: dict, base_id: str) -> dict:
    """The manifest entry of a group whose blob an earlier checkpoint of the session holds."""
    stored_in = previous.get("stored_in") or {"checkpoint_id": base_id, "key": previous["key"]}
    return {
        "key": key,
        "names": list(members),
        "serializer": previous["serializer"],
        "bytes": previous["bytes"],
        "sha256": previous["sha256"],
        "stored_in": {"checkpoint_id": stored_in["checkpoint_id"], "key": stored_in["key"]},
    }
