"""RLocks, and what holds one (``threading.Condition``, ``concurrent.futures.Future``), through a
checkpoint: each comes back as a new, unlocked, usable lock, whichever pickler saved it.

dill's own reducer brings an RLock back looking held (a blocking ``acquire`` never returns);
``serializer._reduce_rlock`` replaces it in both of the agent's picklers.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future

import pytest

from conftest import AGENT_PATH, run_notebook

sys.path.insert(0, str(AGENT_PATH))
from jupyterhub_resume_agent import serializer  # noqa: E402


def _round_trip(value, pickler):
    dumped = pickler({"value": value}, set())
    return dumped.serializer, serializer.load(dumped.serializer, dumped.data, dumped.buffers)["value"]


@pytest.mark.parametrize(("pickler", "used"), [(serializer.dump, "pickle"), (serializer.dump_with_dill, "dill")])
def test_an_rlock_comes_back_unlocked_from_either_pickler(pickler, used):
    held = threading.RLock()
    held.acquire()  # held at checkpoint time: its owner does not exist in a new kernel
    try:
        for lock in (threading.RLock(), held):
            kind, back = _round_trip(lock, pickler)
            assert kind == used
            assert type(back) is type(lock)
            assert back.acquire(blocking=False)
            assert back.acquire(blocking=False)  # still reentrant
            back.release()
            back.release()
    finally:
        held.release()


@pytest.mark.parametrize("pickler", [serializer.dump, serializer.dump_with_dill])
def test_conditions_and_futures_come_back_usable_from_either_pickler(pickler):
    _, condition = _round_trip(threading.Condition(), pickler)
    with condition:
        assert condition.wait(timeout=0) is False
        condition.notify_all()
    _, future = _round_trip(Future(), pickler)
    future.set_result(7)
    assert future.result(timeout=0) == 7


NOTEBOOK = [
    "import threading, concurrent.futures",
    "lock = threading.RLock()\nheld = threading.RLock()\nheld.acquire()",
    "condition = threading.Condition()",
    "future = concurrent.futures.Future()",
    "keyed = {'lock': threading.RLock(), 'key': lambda v: -v}",  # the lambda takes dill throughout
]


@pytest.fixture(scope="module")
def restored(module_kernels, tmp_path_factory):
    source = run_notebook(module_kernels.start(), NOTEBOOK)
    directory = tmp_path_factory.mktemp("checkpoint")
    manifest = source.command({"op": "checkpoint", "checkpoint_id": "ck-locks", "target": {"kind": "dir", "path": str(directory)}})
    assert manifest["recompute"] == [], manifest["recompute"]
    kernel = module_kernels.start()
    report = kernel.command(
        {"op": "restore", "manifest": manifest, "cells": source.command({"op": "history"})["cells"], "source": {"kind": "dir", "path": str(directory)}}
    )
    assert {entry["name"]: entry["status"] for entry in report["variables"]} == {
        "threading": "imported", "concurrent": "imported", "lock": "stored", "held": "stored",
        "condition": "stored", "future": "stored", "keyed": "stored",
    }
    return kernel, {name: group["serializer"] for group in manifest["groups"] for name in group["names"]}


def test_rlocks_come_back_unlocked_and_reentrant(restored):
    kernel, serializers = restored
    assert serializers["lock"] == serializers["held"] == "pickle" and serializers["keyed"] == "dill"
    for name in ("lock", "held", "keyed['lock']"):
        assert kernel.value(f"[{name}.acquire(blocking=False), {name}.acquire(blocking=False)]") == [True, True], name
        kernel.run(f"{name}.release()\n{name}.release()")
        kernel.run(f"with {name}:\n    pass")  # a blocking acquire returns
    assert kernel.value("keyed['key'](3)") == -3


def test_a_condition_can_be_waited_on_and_notified(restored):
    kernel, _ = restored
    assert kernel.value("condition.acquire(blocking=False)") is True
    kernel.run("condition.release()")
    kernel.run("with condition:\n    waited = condition.wait(timeout=0)\n    condition.notify_all()")
    assert kernel.value("waited") is False


def test_a_future_can_be_completed(restored):
    kernel, _ = restored
    kernel.run("future.set_result(7)")
    assert kernel.value("[future.done(), future.result(timeout=0)]") == [True, 7]
