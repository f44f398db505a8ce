"""Types pickle is known to refuse, recognised before anything is pickled.

A failed pickle attempt costs what it pickled before it met the offending object, and its
error names whatever it failed on first (a ``threading.Event`` fails on its inner lock).
Values of these types are recognised by their exact type, named by module and qualified name,
so no optional library is imported to look for them. Each entry was checked against pickle
protocol 5 (dill can save some of them, e.g. locks, by making new ones: that is the
checkpoint's business, not the fingerprint's). Subclasses are not recognised: they may define
their own pickling. A type registered in ``copyreg`` is never refused here.
"""

from __future__ import annotations

import copyreg
import io

from .file_handles import OpenForWriting, reduce_file_handle

_HOLDS_A_LOCK = "it holds a lock"
_OPERATING_SYSTEM = "it wraps an operating-system resource"

#: (module, qualname) → why pickle cannot save it (``None``: the type itself is what it cannot pickle).
_REFUSED: dict[tuple[str, str], str | None] = {
    ("builtins", "generator"): None,
    ("builtins", "coroutine"): None,
    ("builtins", "async_generator"): None,
    ("builtins", "frame"): None,
    ("builtins", "traceback"): None,
    ("builtins", "memoryview"): None,
    ("builtins", "mappingproxy"): None,
    ("weakref", "ReferenceType"): None,
    ("re", "Match"): None,
    ("_thread", "lock"): None,
    ("_thread", "RLock"): None,
    ("threading", "Thread"): _HOLDS_A_LOCK,
    ("threading", "Timer"): _HOLDS_A_LOCK,
    ("threading", "Event"): _HOLDS_A_LOCK,
    ("threading", "Condition"): _HOLDS_A_LOCK,
    ("threading", "Semaphore"): _HOLDS_A_LOCK,
    ("threading", "BoundedSemaphore"): _HOLDS_A_LOCK,
    ("threading", "Barrier"): _HOLDS_A_LOCK,
    ("queue", "Queue"): _HOLDS_A_LOCK,
    ("queue", "LifoQueue"): _HOLDS_A_LOCK,
    ("queue", "PriorityQueue"): _HOLDS_A_LOCK,
    ("_queue", "SimpleQueue"): None,
    ("concurrent.futures._base", "Future"): _HOLDS_A_LOCK,
    ("concurrent.futures.thread", "ThreadPoolExecutor"): _HOLDS_A_LOCK,
    ("concurrent.futures.process", "ProcessPoolExecutor"): _HOLDS_A_LOCK,
    ("_asyncio", "Future"): None,
    ("_asyncio", "Task"): None,
    ("asyncio.unix_events", "_UnixSelectorEventLoop"): _OPERATING_SYSTEM,
    ("socket", "socket"): _OPERATING_SYSTEM,
    ("ssl", "SSLContext"): _OPERATING_SYSTEM,
    ("ssl", "SSLSocket"): _OPERATING_SYSTEM,
    ("ssl", "SSLObject"): _OPERATING_SYSTEM,
    ("sqlite3", "Connection"): _OPERATING_SYSTEM,
    ("sqlite3", "Cursor"): _OPERATING_SYSTEM,
    ("select", "epoll"): _OPERATING_SYSTEM,
    ("select", "poll"): _OPERATING_SYSTEM,
    ("select", "kqueue"): _OPERATING_SYSTEM,
    ("subprocess", "Popen"): _OPERATING_SYSTEM,
    ("mmap", "mmap"): _OPERATING_SYSTEM,
}


#: Verdicts by type: the reason, ``None``, or ``_FILE`` (decided per handle). Bounded: types
#: are held strongly, and a notebook that makes classes in a loop must not grow it forever.
_verdicts: dict = {}
_FILE = "file handle"


def _verdict(kind: type) -> str | None:
    try:
        key = (kind.__module__, kind.__qualname__)
        if key in _REFUSED and kind not in copyreg.dispatch_table:
            module, qualname = key
            note = _REFUSED[key]
            name = qualname if module == "builtins" else f"{module}.{qualname}"
            return f"TypeError: cannot pickle '{name}' object" + (f" ({note})" if note else "")
        return _FILE if issubclass(kind, io.IOBase) else None
    except Exception:  # noqa: BLE001 - a metaclass that misbehaves: not for this table to decide
        return None


def known_unserializable(value: object) -> str | None:
    """Why pickle cannot save ``value`` itself, when its type says so; ``None`` otherwise. Never raises.

    A file handle open for writing is refused too (checkpoints rebuild it by re-running the
    cells that wrote the file, see ``file_handles``).

    :param value: any object (what it holds is not looked at).
    """
    kind = type(value)
    verdict = _verdicts.get(kind, False)
    if verdict is False:
        if len(_verdicts) > 1000:
            _verdicts.clear()
        verdict = _verdicts[kind] = _verdict(kind)
    if verdict is not _FILE:
        return verdict
    try:
        reduce_file_handle(value)
    except OpenForWriting as error:
        return f"OpenForWriting: {error}"
    except Exception:  # noqa: BLE001 - not for this table to decide: pickle will tell
        return None
    return None
