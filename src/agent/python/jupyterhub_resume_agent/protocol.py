"""Validation of every message that crosses into the agent (commands and service answers).

The agent trusts nothing it did not build itself: each parser checks the shape it relies on and
raises ``AgentError(RESUME_ERR_AGENT_BAD_REQUEST)`` naming the first field that is wrong. Unknown
extra fields are kept (newer services may add some).
"""

from __future__ import annotations

import json
import os
import re

from .agent_error import AgentError

#: The protocol version in docs/reference/agent-protocol.md.
PROTOCOL_VERSION = 1
#: This agent's version, sent at registration and in ``status``.
AGENT_VERSION = "0.1.0"

BLOB_KEY = re.compile(r"^[a-z0-9-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OPS = ("status", "flush", "history", "checkpoint", "restore", "describe")


def _bad(where: str, what: str) -> AgentError:
    return AgentError(
        "RESUME_ERR_AGENT_BAD_REQUEST",
        f"{where}: {what}",
        "The service and the agent disagree about docs/reference/agent-protocol.md; check both versions.",
    )


def _field(obj: dict, key: str, kind, where: str, optional: bool = False):
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise _bad(where, f"missing '{key}'")
    value = obj[key]
    if kind is int and isinstance(value, bool):
        raise _bad(where, f"'{key}' must be an integer")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _bad(where, f"'{key}' must be {names}, not {type(value).__name__}")
    return value


def _strings(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(where, "must be a list of strings")
    return value


def parse_target(target, where: str = "target") -> dict:
    """Checks a Target: ``{"kind": "http", "url", "grant"}`` or ``{"kind": "dir", "path"}``."""
    if not isinstance(target, dict):
        raise _bad(where, "must be an object")
    kind = _field(target, "kind", str, where)
    if kind == "http":
        url = _field(target, "url", str, where)
        if not url.startswith(("http://", "https://")):
            raise _bad(where, "'url' must be an http(s) URL")
        _field(target, "grant", str, where)
    elif kind == "dir":
        path = _field(target, "path", str, where)
        if not os.path.isabs(path):
            raise _bad(where, "'path' must be absolute")
    else:
        raise _bad(where, f"unknown kind {kind!r} (expected 'http' or 'dir')")
    return target


def parse_cells(cells, where: str = "cells") -> list[dict]:
    """Checks a list of Cell records (the fields a restore uses must be well formed)."""
    if not isinstance(cells, list):
        raise _bad(where, "must be a list")
    for index, cell in enumerate(cells):
        at = f"{where}[{index}]"
        if not isinstance(cell, dict):
            raise _bad(at, "must be an object")
        _field(cell, "code", str, at)
        for key in ("created", "deleted", "rebound"):
            if cell.get(key) is not None:
                _strings(cell[key], f"{at}.{key}")
    return cells


def _blob_key(obj: dict, at: str) -> str:
    key = _field(obj, "key", str, at)
    if not BLOB_KEY.match(key):
        raise _bad(at, "'key' must match [a-z0-9-]{1,64}")
    return key


def _parse_groups(groups: list, where: str) -> None:
    """Checks a manifest's groups: blob keys unique, and ``stored_in`` (a reused blob) well formed."""
    keys = set()
    for index, group in enumerate(groups):
        at = f"{where}.groups[{index}]"
        if not isinstance(group, dict):
            raise _bad(at, "must be an object")
        key = _blob_key(group, at)
        if key in keys:
            raise _bad(at, f"duplicate key {key!r}")
        keys.add(key)
        if not _strings(_field(group, "names", list, at), f"{at}.names"):
            raise _bad(at, "'names' must not be empty")
        if _field(group, "serializer", str, at) not in ("pickle", "dill"):
            raise _bad(at, "'serializer' must be 'pickle' or 'dill'")
        if _field(group, "bytes", int, at) < 0:
            raise _bad(at, "'bytes' must not be negative")
        if not _SHA256.match(_field(group, "sha256", str, at)):
            raise _bad(at, "'sha256' must be 64 lowercase hex digits")
        stored_in = _field(group, "stored_in", dict, at, optional=True)
        if stored_in is not None:
            _field(stored_in, "checkpoint_id", str, f"{at}.stored_in")
            _blob_key(stored_in, f"{at}.stored_in")


def parse_manifest(manifest, where: str = "manifest") -> dict:
    """Checks a Manifest as a restore needs it."""
    if not isinstance(manifest, dict):
        raise _bad(where, "must be an object")
    _field(manifest, "checkpoint_id", str, where)
    count = _field(manifest, "execution_count", int, where)
    if count < 0:
        raise _bad(where, "'execution_count' must not be negative")
    _parse_groups(_field(manifest, "groups", list, where), where)
    for index, item in enumerate(_field(manifest, "imports", list, where)):
        at = f"{where}.imports[{index}]"
        if not isinstance(item, dict):
            raise _bad(at, "must be an object")
        _field(item, "name", str, at)
        _field(item, "module", str, at)
    for index, item in enumerate(_field(manifest, "recompute", list, where)):
        at = f"{where}.recompute[{index}]"
        if not isinstance(item, dict):
            raise _bad(at, "must be an object")
        _field(item, "name", str, at)
    variables = manifest.get("variables")
    if variables is not None:
        if not isinstance(variables, list):
            raise _bad(where, "'variables' must be a list")
        for index, item in enumerate(variables):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise _bad(f"{where}.variables[{index}]", "must be an object with a 'name'")
    return manifest


def _indices(value, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= -1 for i in value):
        raise _bad(where, "must be a list of cell indices")
    return value


def parse_restore_plan(plan, where: str = "plan") -> dict | None:
    """Checks a restore plan: ``{"rerun": [index…], "load_after": {key: index}, "fallback": {key: [index…]}}`` (or ``None``)."""
    if plan is None:
        return None
    if not isinstance(plan, dict):
        raise _bad(where, "must be an object")
    _indices(_field(plan, "rerun", list, where), f"{where}.rerun")
    for field in ("load_after", "fallback"):
        mapping = _field(plan, field, dict, where)
        for key, value in mapping.items():
            if not BLOB_KEY.match(key):
                raise _bad(f"{where}.{field}", f"{key!r} is not a blob key")
            if field == "load_after":
                _indices([value], f"{where}.{field}.{key}")
            else:
                _indices(value, f"{where}.{field}.{key}")
    return plan


def parse_command(raw) -> dict:
    """Decodes and checks a command (a JSON string or an already decoded object).

    :returns: the request, with ``op`` known and that op's fields checked.
    """
    if isinstance(raw, (str, bytes)):
        try:
            request = json.loads(raw)
        except ValueError as error:
            raise _bad("request", f"not JSON ({error})") from error
    else:
        request = raw
    if not isinstance(request, dict):
        raise _bad("request", "must be a JSON object")
    op = _field(request, "op", str, "request")
    if op not in _OPS:
        raise _bad("request", f"unknown op {op!r} (expected one of {', '.join(_OPS)})")
    where = f"{op} request"
    if op == "flush":
        timeout = request.get("timeout_s", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise _bad(where, "'timeout_s' must be a non-negative number")
    elif op == "checkpoint":
        _field(request, "checkpoint_id", str, where)
        parse_target(request.get("target"), f"{where}.target")
        if request.get("recompute") is not None:
            _strings(request["recompute"], f"{where}.recompute")
        base = _field(request, "base", dict, where, optional=True)
        if base is not None:
            _field(base, "checkpoint_id", str, f"{where}.base")
            _parse_groups(_field(base, "groups", list, f"{where}.base"), f"{where}.base")
    elif op == "restore":
        parse_manifest(request.get("manifest"), f"{where}.manifest")
        parse_cells(request.get("cells", []), f"{where}.cells")
        parse_target(request.get("source"), f"{where}.source")
        parse_restore_plan(request.get("plan"), f"{where}.plan")
    return request


def parse_register_answer(answer) -> dict:
    """Checks the answer to ``POST api/agent/kernels``: ``{"run_id", "restore": null | {...}}``."""
    where = "registration answer"
    if not isinstance(answer, dict):
        raise _bad(where, "must be a JSON object")
    _field(answer, "run_id", str, where)
    restore = answer.get("restore")
    if restore is not None:
        if not isinstance(restore, dict):
            raise _bad(where, "'restore' must be an object or null")
        _field(restore, "checkpoint_id", str, f"{where}.restore")
        parse_manifest(restore.get("manifest"), f"{where}.restore.manifest")
        parse_cells(restore.get("cells", []), f"{where}.restore.cells")
        parse_target(restore.get("source"), f"{where}.restore.source")
        parse_restore_plan(restore.get("plan"), f"{where}.restore.plan")
    return answer
