"""``group_costs`` says a group is serializable exactly when a checkpoint stores it, in a real kernel.

Both follow the checkpoint serializer's rule (pickle, else dill): locks, events, queues and
notebook lambdas are serializable (dill saves them as new ones), and come back from a restore;
generators, sockets and database connections are not, and are rebuilt from history.
"""

from __future__ import annotations

import pytest

from conftest import restore_from_dir

NOTEBOOK = [
    "import queue\nimport socket\nimport sqlite3\nimport threading\nimport types",
    "lock_a = threading.Lock()",
    "held_b = threading.Lock()\nheld_b.acquire()",
    "event_c = threading.Event()\nevent_c.set()",
    "jobs_d = queue.Queue()\njobs_d.put('first')\njobs_d.put([1, 2])",
    "square_e = lambda v: v * v",
    "class Cache:\n    def __init__(self):\n        self.lock = threading.Lock()\n        self.rows = {'k': [1, 2, 3]}",
    "cache_f = Cache()",
    "proxy_g = types.MappingProxyType({'a': 1})",
    "squares_h = (n * n for n in range(5))",
    "connection_i = socket.socket()",
    "database_j = sqlite3.connect(':memory:')",
    "stuck_k = queue.Queue()\nstuck_k.put(n for n in range(3))",
    "worker_l = threading.Thread(target=print)",
]
STORED = ["lock_a", "held_b", "event_c", "jobs_d", "square_e", "Cache", "cache_f", "proxy_g"]
REBUILT = {"squares_h": "generator", "connection_i": "socket", "database_j": "sqlite3", "stuck_k": "generator"}


@pytest.fixture(scope="module")
def source(module_kernels):
    kernel = module_kernels.start()
    for cell in NOTEBOOK:
        assert kernel.run(cell).reply["status"] == "ok", cell
    return kernel


def _reported_groups(kernel) -> list[tuple[list[str], dict, list[str]]]:
    """(group, its cost facts, the names the cell created) of every group every record reports."""
    reported = []
    for cell in kernel.command({"op": "history"})["cells"]:
        assert len(cell["group_costs"]) == len(cell["groups"]), cell["code"]
        reported += [(group, cost, cell["created"]) for group, cost in zip(cell["groups"], cell["group_costs"])]
    return reported


@pytest.fixture(scope="module")
def costs(source) -> dict[str, dict]:
    """name → the cost facts of its group in the record of the cell that created it."""
    return {name: cost for group, cost, created in _reported_groups(source) for name in group if name in created}


@pytest.fixture(scope="module")
def checkpoint(source, tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("checkpoint")
    manifest = source.command({"op": "checkpoint", "checkpoint_id": "ck-costs", "target": {"kind": "dir", "path": str(directory)}})
    assert "error" not in manifest, manifest
    return {"manifest": manifest, "dir": directory, "cells": source.command({"op": "history"})["cells"]}


def _unserializable(cost: dict) -> dict[str, str]:
    return {entry["name"]: entry["reason"] for entry in cost["unserializable"]}


def test_values_dill_saves_are_serializable_and_stored(costs, checkpoint):
    how = {item["name"]: item["how"] for item in checkpoint["manifest"]["variables"]}
    for name in STORED:
        assert costs[name]["serializable"] is True, (name, costs[name])
        assert how[name] == "stored", name
    serializers = {name: group["serializer"] for group in checkpoint["manifest"]["groups"] for name in group["names"]}
    assert {serializers[name] for name in STORED} == {"dill"}


def test_values_neither_can_save_are_unserializable_and_rebuilt_for_the_same_kind_of_reason(costs, checkpoint):
    recompute = {item["name"]: item["reason"] for item in checkpoint["manifest"]["recompute"]}
    for name, kind in REBUILT.items():
        assert costs[name]["serializable"] is False, name
        reason = _unserializable(costs[name])[name]
        assert kind in reason and kind in recompute[name], (name, reason, recompute[name])
        assert reason.startswith("TypeError") and recompute[name].startswith("TypeError"), (reason, recompute[name])


def test_every_member_of_every_reported_group_is_judged_as_the_checkpoint_judges_it(source, costs, checkpoint):
    recompute = {item["name"]: item["reason"] for item in checkpoint["manifest"]["recompute"]}
    for group, cost, _ in _reported_groups(source):
        listed = _unserializable(cost)
        for name in group:
            assert (name in listed) == (name in recompute), (name, cost, recompute.get(name))
        assert cost["serializable"] is (not listed)
    # A thread keeps sys.stderr, the kernel's output stream, which neither pickle nor dill can save.
    assert "worker_l" in recompute and "threading.Thread" in _unserializable(costs["worker_l"])["worker_l"]


def test_stored_values_come_back_from_a_restore_as_new_equivalent_objects(module_kernels, checkpoint):
    kernel = module_kernels.start()
    report = restore_from_dir(kernel, checkpoint)
    assert "error" not in report, report
    status = {entry["name"]: entry["status"] for entry in report["variables"]}
    assert {status[name] for name in STORED} == {"stored"}
    assert {status[name] for name in REBUILT} == {"recomputed"}
    assert kernel.value("[lock_a.acquire(blocking=False), held_b.locked(), event_c.is_set()]") == [True, True, True]
    assert kernel.value("[jobs_d.get_nowait(), jobs_d.get_nowait(), jobs_d.empty()]") == ["first", [1, 2], True]
    assert kernel.value("[square_e(7), isinstance(cache_f, Cache), cache_f.rows, cache_f.lock.acquire(blocking=False)]") == [
        49,
        True,
        {"k": [1, 2, 3]},
        True,
    ]
    assert kernel.value("proxy_g['a']") == 1
    assert kernel.value("[next(squares_h), isinstance(connection_i, socket.socket)]") == [0, True]


def test_without_dill_the_record_and_the_checkpoint_both_fall_back_to_pickle(start_kernel, tmp_path):
    kernel = start_kernel()
    cells = [
        "import sys\nsys.modules['dill'] = None  # import dill now fails, as where it is not installed",
        "import threading\nlock_m = threading.Lock()",
        "def double(v):\n    return 2 * v",
        "numbers_n = [1, 2, 3]",
    ]
    for cell in cells:
        assert kernel.run(cell).reply["status"] == "ok", cell
    costs = {name: cost for cell in kernel.command({"op": "history"})["cells"] for group, cost in zip(cell["groups"], cell["group_costs"]) for name in group}
    manifest = kernel.command({"op": "checkpoint", "checkpoint_id": "ck-no-dill", "target": {"kind": "dir", "path": str(tmp_path)}})
    recompute = {item["name"]: item["reason"] for item in manifest["recompute"]}
    assert _unserializable(costs["lock_m"]) == {"lock_m": recompute["lock_m"]}
    assert recompute["lock_m"] == "TypeError: cannot pickle '_thread.lock' object (and dill is not installed)"
    assert _unserializable(costs["double"]) == {"double": recompute["double"]}
    assert "(and dill is not installed)" in recompute["double"]
    assert costs["numbers_n"]["serializable"] is True and "numbers_n" not in recompute
