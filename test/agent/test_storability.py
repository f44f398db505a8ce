"""Whether a checkpoint can store a value, as fingerprints tell it (``Fingerprint.unstorable_reason``,
which ``group_costs`` reports), against what the checkpoint's serializer does with it, in-process.

The rule is ``serializer.dump``'s: pickle, else dill. Every entry of the known-types table is
checked against it, and so are values the table cannot settle by their type alone. The kernel
tests (test_group_costs_checkpoint.py) check the same through cell records and a real checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mmap
import pickle
import queue
import re
import select
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import types
import weakref
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from conftest import AGENT_PATH

sys.path.insert(0, str(AGENT_PATH))
from jupyterhub_resume_agent import fingerprints, serializer, unserializable_types  # noqa: E402
from jupyterhub_resume_agent.fingerprints import PER_CELL_OBJECT_BUDGET, FingerprintTaker  # noqa: E402
from jupyterhub_resume_agent.unserializable_types import known_unserializable, known_unstorable  # noqa: E402


def _generator():
    yield 1


async def _coroutine():
    return 1


async def _async_generator():
    yield 1


def _traceback():
    try:
        raise ValueError("for its traceback")
    except ValueError as error:
        return error.__traceback__


class _Referent:
    """Something a weak reference can point at."""


def _checkpoint_reason(value) -> str | None:
    """What the checkpoint's serializer says of ``value``: ``None`` when it stores it, else why not."""
    try:
        serializer.dump({"value": value}, set())
    except serializer.NotSerializable as error:
        return str(error)
    return None


def _unstorable(value) -> str | None:
    return FingerprintTaker({}).take(value, hash_large=False, estimate=True).unstorable_reason


@pytest.fixture
def checks(monkeypatch) -> list:
    """What fingerprints did to find out whether a checkpoint can store a value: ``["storage" | "dill", ...]``."""
    calls: list = []
    storage_dump, dump_with_dill = fingerprints._storage_dump, fingerprints.dump_with_dill

    def counted_storage_dump(*args):
        calls.append("storage")
        return storage_dump(*args)

    def counted_dump_with_dill(*args):
        calls.append("dill")
        return dump_with_dill(*args)

    monkeypatch.setattr(fingerprints, "_storage_dump", counted_storage_dump)
    monkeypatch.setattr(fingerprints, "dump_with_dill", counted_dump_with_dill)
    return calls


@pytest.fixture
def table_samples():
    """One value of each type in the known-types table (``(module, qualname)`` → value), closed afterwards."""
    with contextlib.ExitStack() as stack:
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        task = loop.create_task(_coroutine())
        stack.callback(lambda: loop.run_until_complete(task))  # runs it to its end before the loop closes
        coroutine = _coroutine()
        stack.callback(coroutine.close)
        context = ssl.create_default_context()
        connection = sqlite3.connect(":memory:")
        stack.callback(connection.close)
        process = subprocess.Popen([sys.executable, "-c", "pass"])
        stack.callback(process.wait)
        thread_pool, process_pool = ThreadPoolExecutor(1), ProcessPoolExecutor(1)
        stack.callback(thread_pool.shutdown)
        stack.callback(process_pool.shutdown)
        referent = _Referent()
        closables = {
            ("socket", "socket"): socket.socket(),
            ("ssl", "SSLSocket"): context.wrap_socket(socket.socket(), server_hostname="example.org"),
            ("select", "epoll"): select.epoll(),
            ("mmap", "mmap"): mmap.mmap(-1, 16),
        }
        for value in closables.values():
            stack.callback(value.close)
        samples = {
            ("builtins", "generator"): _generator(),
            ("builtins", "coroutine"): coroutine,
            ("builtins", "async_generator"): _async_generator(),
            ("builtins", "frame"): sys._getframe(),
            ("builtins", "traceback"): _traceback(),
            ("builtins", "memoryview"): memoryview(b"bytes"),
            ("re", "Match"): re.match("a", "a"),
            ("threading", "Thread"): threading.Thread(target=print),
            ("threading", "Timer"): threading.Timer(60, print),
            ("_queue", "SimpleQueue"): queue.SimpleQueue(),
            ("concurrent.futures.thread", "ThreadPoolExecutor"): thread_pool,
            ("concurrent.futures.process", "ProcessPoolExecutor"): process_pool,
            ("_asyncio", "Future"): loop.create_future(),
            ("_asyncio", "Task"): task,
            ("asyncio.unix_events", "_UnixSelectorEventLoop"): loop,
            ("ssl", "SSLContext"): context,
            ("ssl", "SSLObject"): context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.org"),
            ("sqlite3", "Connection"): connection,
            ("sqlite3", "Cursor"): connection.cursor(),
            ("select", "poll"): select.poll(),
            **closables,
            ("_thread", "lock"): threading.Lock(),
            ("_thread", "RLock"): threading.RLock(),
            ("builtins", "mappingproxy"): types.MappingProxyType({"a": [1]}),
            ("weakref", "ReferenceType"): weakref.ref(referent),
            ("threading", "Event"): threading.Event(),
            ("threading", "Condition"): threading.Condition(),
            ("threading", "Semaphore"): threading.Semaphore(),
            ("threading", "BoundedSemaphore"): threading.BoundedSemaphore(),
            ("threading", "Barrier"): threading.Barrier(2),
            ("queue", "Queue"): queue.Queue(),
            ("queue", "LifoQueue"): queue.LifoQueue(),
            ("queue", "PriorityQueue"): queue.PriorityQueue(),
            ("concurrent.futures._base", "Future"): Future(),
            ("subprocess", "Popen"): process,
        }
        yield samples


def test_every_entry_of_the_table_agrees_with_the_checkpoint_serializer(table_samples):
    table = {*unserializable_types._REFUSED, *unserializable_types._DILL_SAVES, *unserializable_types._HOLDS_LOCKS}
    # kqueue is BSD's and macOS's epoll: this platform has none to try.
    assert set(table_samples) == table - ({("select", "kqueue")} if not hasattr(select, "kqueue") else set())
    for key, value in table_samples.items():
        assert (type(value).__module__, type(value).__qualname__) == key
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever pickle raises
            pickle.dumps(value, protocol=5)
        assert known_unserializable(value) is not None, key
        stored = _checkpoint_reason(value) is None
        assert (known_unstorable(value) is None) == stored, key
        assert (key in unserializable_types._REFUSED) == (not stored), key
        assert (_unstorable(value) is None) == stored, key


def test_dill_savable_types_cost_one_c_pickle_and_never_dill(checks):
    values = [threading.Lock(), threading.Event(), queue.Queue(), Future(), types.MappingProxyType({"a": 1})]
    for value in values:
        assert _unstorable(value) is None and _checkpoint_reason(value) is None
    assert checks == ["storage"] * len(values)


def test_types_neither_can_save_are_refused_without_pickling_them_again(checks):
    connection = socket.socket()
    try:
        assert _unstorable(connection) == known_unserializable(connection)
        assert "socket" in _checkpoint_reason(connection)
    finally:
        connection.close()
    assert _unstorable(_generator()) == _checkpoint_reason(_generator()) == "TypeError: cannot pickle 'generator' object"
    assert checks == []


class _Cache:
    """A library object holding a lock next to its data: pickle refuses it, dill saves it."""

    def __init__(self, held) -> None:
        self.lock = threading.RLock()
        self.rows = [[i] for i in range(1000)]
        self.held = held


def test_what_a_value_holds_decides_without_dill_when_the_table_knows_its_types(checks):
    jobs = queue.Queue()
    jobs.put([1, 2])
    stuck = queue.Queue()
    stuck.put(_generator())
    storable = [jobs, [threading.Lock()], _Cache(threading.Event())]
    for value in storable:
        assert _unstorable(value) is None and _checkpoint_reason(value) is None
    for value in (stuck, _Cache(_generator()), [threading.Lock(), _generator()]):
        assert _unstorable(value) == _checkpoint_reason(value) == "TypeError: cannot pickle 'generator' object"
    assert "dill" not in checks


def _local_instance():
    class Local:  # pickle saves classes by name, and this one has none it can be found by
        def __init__(self) -> None:
            self.items = [1, 2]

    return Local()


def test_a_failure_the_table_cannot_explain_is_put_to_dill_itself(checks):
    value = _local_instance()
    assert FingerprintTaker({}).take(value, hash_large=False).serializable is False  # pickle refuses it
    checks.clear()
    assert _unstorable(value) is None and _checkpoint_reason(value) is None  # dill saves the class by value
    assert checks == ["storage", "dill"]
    checks.clear()
    digests = [hashlib.sha1(b"state")]
    assert _unstorable(digests) == _checkpoint_reason(digests) == "TypeError: cannot pickle '_hashlib.HASH' object"
    assert checks == ["storage", "dill"]


def test_without_dill_the_verdict_is_the_one_pickle_gives(monkeypatch):
    monkeypatch.setitem(sys.modules, "dill", None)  # ``import dill`` now fails, as where it is not installed
    assert not serializer.dill_available()
    lock = threading.Lock()
    assert _unstorable(lock) == _checkpoint_reason(lock) == "TypeError: cannot pickle '_thread.lock' object (and dill is not installed)"
    # Notebook code: pickle would look it up by name in a kernel that does not have it yet.
    notebook_function = types.FunctionType(compile("def f(): return 1", "<cell>", "exec").co_consts[0], {})
    notebook_function.__module__ = "__main__"
    monkeypatch.setattr(sys.modules["__main__"], "f", notebook_function, raising=False)  # pickle finds it by name
    holder = {"call": notebook_function}
    assert _unstorable(holder) == _checkpoint_reason(holder)
    assert _unstorable(holder) == "refers to a function or class defined in the notebook (and dill is not installed)"
    assert _unstorable([1, 2]) is None and _checkpoint_reason([1, 2]) is None


def test_a_graph_too_big_to_check_after_a_cell_is_judged_by_its_sample(checks):
    locks = [threading.Lock() for _ in range(PER_CELL_OBJECT_BUDGET * 2)]
    # Past the budget and holding what pickle refuses: not pickled again after the cell.
    assert "not checked whether dill can save it" in _unstorable(locks)
    generators = [_generator() for _ in range(PER_CELL_OBJECT_BUDGET * 2)]
    assert _unstorable(generators) == "TypeError: cannot pickle 'generator' object"
    assert checks == []
    # Measured in full when no recorded cell explains it (``estimate`` false): checked in full too.
    assert FingerprintTaker({}).take(locks, hash_large=False).unstorable_reason is None
    assert _checkpoint_reason(locks) is None
