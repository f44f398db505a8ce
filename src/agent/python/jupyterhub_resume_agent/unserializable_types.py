"""Types pickle is known to refuse, recognised before anything is pickled, and what dill makes of them.

A failed pickle attempt costs what it pickled before it met the offending object, and its
error names whatever it failed on first (a ``threading.Event`` fails on its inner lock).
Values of these types are recognised by their exact type, named by module and qualified name,
so no optional library is imported to look for them. Subclasses are not recognised: they may
define their own pickling. A type registered in ``copyreg`` is never refused here.

A checkpoint falls back to dill where pickle fails (``serializer.dump``), and dill saves some of
these types by making new equivalent objects: a new lock (a ``Lock`` locked if the old one was,
an ``RLock`` always unlocked: ``serializer._reduce_rlock``), a queue with the same items and new
locks. So each entry also says what dill does (``Refusal``):

* ``_REFUSED``: dill cannot save them either; a checkpoint rebuilds them from history.
* ``_DILL_SAVES``: dill saves them, and ``parts`` says what it saves of one.
* ``_HOLDS_LOCKS``: plain objects pickle refuses only for the locks they hold; dill saves their
  state like any instance's, with new locks. Whether it can save everything they hold is not
  for this table to say (``fingerprints`` pickles through them to find out).

Each entry was checked against pickle protocol 5 and against ``serializer.dump`` in a kernel
(``test_fingerprints`` checks the table against the serializer, entry by entry).
"""

from __future__ import annotations

import copyreg
import gc
import io
from collections.abc import Callable
from typing import NamedTuple

from .file_handles import OpenForWriting, reduce_file_handle

_HOLDS_A_LOCK = "it holds a lock"
_OPERATING_SYSTEM = "it wraps an operating-system resource"
# ``Thread.__init__`` keeps ``sys.stderr``: the kernel's output stream, or a file open for writing.
_HOLDS_STDERR = "it holds sys.stderr"
_HOLDS_A_SIMPLE_QUEUE = "it holds a queue.SimpleQueue"


def _no_parts(_value) -> tuple:
    # A lock comes back as a new lock: nothing of the old one is saved but whether it was held
    # (and for an RLock not even that).
    return ()


def _referent(reference) -> tuple:
    return (reference(),)


#: (module, qualname) → why pickle cannot save it (``None``: the type itself is what it cannot
#: pickle). dill cannot either.
_REFUSED: dict[tuple[str, str], str | None] = {
    ("builtins", "generator"): None,
    ("builtins", "coroutine"): None,
    ("builtins", "async_generator"): None,
    ("builtins", "frame"): None,
    ("builtins", "traceback"): None,
    ("builtins", "memoryview"): None,
    ("re", "Match"): None,
    ("threading", "Thread"): _HOLDS_STDERR,
    ("threading", "Timer"): _HOLDS_STDERR,
    ("_queue", "SimpleQueue"): None,
    ("concurrent.futures.thread", "ThreadPoolExecutor"): _HOLDS_A_SIMPLE_QUEUE,
    ("concurrent.futures.process", "ProcessPoolExecutor"): _OPERATING_SYSTEM,
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
    ("mmap", "mmap"): _OPERATING_SYSTEM,
}

#: (module, qualname) → what dill saves of a value of that type, which pickle cannot save at all.
_DILL_SAVES: dict[tuple[str, str], Callable[[object], tuple]] = {
    ("_thread", "lock"): _no_parts,
    ("_thread", "RLock"): _no_parts,
    ("builtins", "mappingproxy"): gc.get_referents,  # the mapping it shows
    ("weakref", "ReferenceType"): _referent,
}

#: Types pickle refuses only for the locks they hold (dill saves them with new locks).
_HOLDS_LOCKS: frozenset[tuple[str, str]] = frozenset(
    {
        ("threading", "Event"),
        ("threading", "Condition"),
        ("threading", "Semaphore"),
        ("threading", "BoundedSemaphore"),
        ("threading", "Barrier"),
        ("queue", "Queue"),
        ("queue", "LifoQueue"),
        ("queue", "PriorityQueue"),
        ("concurrent.futures._base", "Future"),
        ("subprocess", "Popen"),
    }
)


class Refusal(NamedTuple):
    """What the table says of a type pickle refuses."""

    #: pickle's error, worded as pickle words it (plus why, when the type is not itself the problem).
    reason: str
    #: Whether a checkpoint's dill fallback can save a value of this type all the same.
    dill_saves: bool
    #: For a type in ``_DILL_SAVES``: the parts of a value dill saves (``None``: its state, as for
    #: any instance).
    parts: Callable[[object], tuple] | None = None


#: Verdicts by type: a ``Refusal``, ``None``, or ``_FILE`` (decided per handle). Bounded: types
#: are held strongly, and a notebook that makes classes in a loop must not grow it forever.
_verdicts: dict = {}
_FILE = "file handle"


def _refusal(key: tuple[str, str]) -> Refusal | None:
    module, qualname = key
    name = qualname if module == "builtins" else f"{module}.{qualname}"
    if key in _REFUSED:
        note = _REFUSED[key]
        dill_saves, parts = False, None
    elif key in _DILL_SAVES:
        note, dill_saves, parts = None, True, _DILL_SAVES[key]
    elif key in _HOLDS_LOCKS:
        note, dill_saves, parts = _HOLDS_A_LOCK, True, None
    else:
        return None
    return Refusal(f"TypeError: cannot pickle '{name}' object" + (f" ({note})" if note else ""), dill_saves, parts)


def _verdict(kind: type):
    try:
        refusal = _refusal((kind.__module__, kind.__qualname__))
        if refusal is not None and kind not in copyreg.dispatch_table:
            return refusal
        return _FILE if issubclass(kind, io.IOBase) else None
    except Exception:  # noqa: BLE001 - a metaclass that misbehaves: not for this table to decide
        return None


def _cached_verdict(kind: type):
    verdict = _verdicts.get(kind, False)
    if verdict is False:
        if len(_verdicts) > 1000:
            _verdicts.clear()
        verdict = _verdicts[kind] = _verdict(kind)
    return verdict


def _file_reason(handle) -> str | None:
    # Checkpoints refuse a handle open for writing whichever serializer meets it (``file_handles``).
    try:
        reduce_file_handle(handle)
    except OpenForWriting as error:
        return f"OpenForWriting: {error}"
    except Exception:  # noqa: BLE001 - not for this table to decide: pickle will tell
        return None
    return None


def type_refusal(kind: type) -> Refusal | None:
    """The table's entry for exactly ``kind``, ``None`` when it has none (file handles included); never raises."""
    verdict = _cached_verdict(kind)
    return verdict if isinstance(verdict, Refusal) else None


def known_unserializable(value: object) -> str | None:
    """Why pickle cannot save ``value`` itself, when its type says so; ``None`` otherwise. Never raises.

    A file handle open for writing is refused too (checkpoints rebuild it by re-running the
    cells that wrote the file, see ``file_handles``).

    :param value: any object (what it holds is not looked at).
    """
    verdict = _cached_verdict(type(value))
    if verdict is _FILE:
        return _file_reason(value)
    return verdict.reason if verdict is not None else None


def known_unstorable(value: object) -> str | None:
    """Why a checkpoint cannot store ``value`` itself, pickle nor dill, when its type says so; never raises.

    ``None`` for a type dill saves (a lock) and for any type the table does not know: what such
    a value holds decides. A file handle open for writing is refused as by ``known_unserializable``.

    :param value: any object (what it holds is not looked at).
    """
    verdict = _cached_verdict(type(value))
    if verdict is _FILE:
        return _file_reason(value)
    return verdict.reason if verdict is not None and not verdict.dill_saves else None
