"""A variable's fingerprint: which mutable objects it reaches, and a hash of their content.

Two fingerprints of one variable, taken before and after a cell, tell whether the cell changed
it in place (``modified``); the reachable ids say which variables share state (co-variables).

How it is taken (Kishu's design, with pickle's own notion of reachability):

* The value is pickled (protocol 5, out-of-band buffers) by the agent's C pickler
  (``serializer``), whose memo then holds every object it reached. ``object_links.LinkFilter``
  keeps the ones that can link variables (no atoms, modules, library classes or singletons);
  numpy arrays add the array whose memory they view (``v = a[::2]`` links to ``a``).
* Content: sha1 of the pickle bytes and of each out-of-band buffer, hashed straight from the
  array's memory (big buffers in chunks on a few threads: hashlib releases the GIL). Exact, no
  sampling. Large buffers of a new variable may be left unhashed (``digest`` ``None``) until a
  cell reads it: most big arrays are made once and read many times, or never.
* Notebook functions and classes are pickled by value, not by name: their defaults, closure
  cells, ``__dict__`` and class attributes are content too (``def f(cache={})``).
* ``__reduce__`` methods build temporary tuples and dicts that also land in the memo, with new
  ids each time. When the memo holds objects pickled that way, the value is pickled a second
  time with the first memo still alive, and only ids present in both are kept.
* A value pickle cannot save (generator, lock, socket, open file for writing) is
  ``serializable=False``: its content cannot be compared, so a cell that can reach it counts as
  modifying it. Its links come from a walk of real references (``reference_walk``).

Modules are never pickled: their state is not tracked (a known gap, like objects reached only
through a module or a library closure).
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import os
import pickle
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .array_views import root_array
from .code_reads import code_names, global_names_of
from .object_links import LinkFilter
from .reference_walk import reachable_objects
from .serializer import PROTOCOL, _Pickler

#: Buffers from this size are hashed in chunks on several threads.
_PARALLEL_FROM = 64 << 20
_CHUNK = 16 << 20
#: A new variable's buffers above this total are hashed only when a cell first reads it.
LAZY_HASH_FROM = 16 << 20

#: Types the C pickler saves itself (no ``__reduce__``, so no temporaries in the memo).
_DIRECT_TYPES = frozenset(
    {list, dict, set, frozenset, tuple, str, bytes, bytearray, int, float, bool, type(None), pickle.PickleBuffer}
)
_REDUCED_HERE = frozenset({types.FunctionType, types.ModuleType, staticmethod, classmethod, property})
_MARKER = "\x00jupyterhub-resume:"
_OPAQUE = _MARKER + "opaque"
# ``__slotnames__`` is a cache copyreg adds on the first pickle of an instance: not a change.
_CLASS_SKIP = frozenset({"__dict__", "__weakref__", "__slotnames__"})
_CLASS_VALUE_TYPES = frozenset(
    {list, dict, set, frozenset, tuple, str, bytes, int, float, bool, type(None), types.FunctionType, staticmethod, classmethod, property}
)


@dataclass(frozen=True)
class Fingerprint:
    """One variable's state as far as dependencies go.

    ``digest`` is ``None`` when the content was not hashed (yet, or not serializable).
    ``code_reads``: globals that notebook functions and classes it reaches may read.
    """

    value_id: int
    link_ids: frozenset
    digest: bytes | None
    serializable: bool
    code_reads: frozenset
    hashed_bytes: int = 0


def _importable(function) -> bool:
    target = sys.modules.get(getattr(function, "__module__", None) or "")
    for part in (getattr(function, "__qualname__", "") or "").split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is function


class _FingerprintPickler(_Pickler):
    """The agent's pickler, with notebook code saved by value and modules by name.

    Every reduction here passes its parts as list items (``APPENDS``), which pickle never
    memoizes as a container: the memo stays free of temporaries of our own making.
    """

    def reducer_override(self, obj):  # noqa: PLR0911 - one branch per kind of object
        kind = type(obj)
        if kind is types.FunctionType:
            if obj.__module__ != "__main__" and _importable(obj):
                return NotImplemented  # a library function, saved by name
            cells = []
            for cell in obj.__closure__ or ():
                try:
                    cells.append(cell.cell_contents)
                except ValueError:
                    cells.append(_OPAQUE)
            return list, (), None, iter(
                [_MARKER + "function", obj.__qualname__, id(obj.__code__), obj.__defaults__, obj.__kwdefaults__, obj.__dict__, *cells]
            )
        if kind is types.ModuleType:
            return list, (), None, iter([_MARKER + "module", obj.__name__])
        if kind is staticmethod or kind is classmethod:
            return list, (), None, iter([_MARKER + kind.__name__, obj.__func__])
        if kind is property:
            return list, (), None, iter([_MARKER + "property", obj.fget, obj.fset, obj.fdel])
        if isinstance(obj, type) and obj.__module__ == "__main__":
            items = [_MARKER + "class", obj.__qualname__]
            for name, value in list(vars(obj).items()):
                if name in _CLASS_SKIP:
                    continue
                if type(value) in _CLASS_VALUE_TYPES or type(value).__module__ == "__main__":
                    items += [name, value]
                else:
                    items += [name, _OPAQUE, id(value)]  # library descriptors, ABC caches ...
            return list, (), None, iter(items)
        return NotImplemented


@dataclass
class _Dump:
    data: bytes
    buffers: list
    objects: list


def _dump(value) -> _Dump:
    buffers: list = []
    out = io.BytesIO()
    pickler = _FingerprintPickler(out, protocol=PROTOCOL, buffer_callback=buffers.append)
    pickler.prepare(frozenset())
    pickler.dump(value)
    return _Dump(out.getvalue(), buffers, [obj for _, obj in pickler.memo.copy().values()])


def _plain_instance_type(kind: type) -> bool:
    # object.__reduce_ex__ hands pickle the instance's own __dict__: nothing temporary.
    return (
        kind.__reduce_ex__ is object.__reduce_ex__
        and kind.__reduce__ is object.__reduce__
        and getattr(kind, "__getstate__", object.__getstate__) is object.__getstate__
        and "__slots__" not in kind.__dict__
        and kind not in copyreg.dispatch_table
    )


def _may_hold_temporaries(objects: list, verdicts: dict) -> bool:
    for obj in objects:
        kind = type(obj)
        verdict = verdicts.get(kind)
        if verdict is None:
            verdict = not (
                kind in _DIRECT_TYPES
                or kind in _REDUCED_HERE
                or isinstance(obj, type)
                or kind is types.BuiltinFunctionType
                or _plain_instance_type(kind)
            )
            verdicts[kind] = verdict
        if verdict:
            return True
    return False


_pool: ThreadPoolExecutor | None = None


def _hash_pool() -> ThreadPoolExecutor | None:
    global _pool
    workers = min(4, os.cpu_count() or 1)
    if workers < 2:
        return None
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jupyterhub-resume-hash")
    return _pool


def _sha1(view) -> bytes:
    return hashlib.sha1(view, usedforsecurity=False).digest()


def _hash_buffer(digest, view: memoryview) -> None:
    digest.update(view.nbytes.to_bytes(8, "little"))
    pool = _hash_pool() if view.nbytes >= _PARALLEL_FROM else None
    if pool is None:
        digest.update(view)
        return
    chunks = [view[start : start + _CHUNK] for start in range(0, view.nbytes, _CHUNK)]
    for part in pool.map(_sha1, chunks):
        digest.update(part)


def _buffer_view(buffer) -> memoryview:
    try:
        return buffer.raw()
    except BufferError:  # not contiguous: hash a copy
        return memoryview(bytes(memoryview(buffer)))


def _array_bases(objects: list, numpy) -> set[int]:
    ids = set()
    for obj in objects:
        if type(obj) is numpy.ndarray and obj.base is not None:
            root = root_array(obj)
            if root is not obj:
                ids.add(id(root))
    return ids


def _code_reads(objects: list) -> frozenset:
    names: set[str] = set()
    seen: set[int] = set()
    for obj in objects:
        kind = type(obj)
        if kind is types.CodeType:
            code_names(obj, names, seen)
        elif (kind is types.FunctionType or isinstance(obj, type)) and getattr(obj, "__module__", None) == "__main__":
            names.update(global_names_of(obj, seen) or ())
    return frozenset(names)


class FingerprintTaker:
    """Takes fingerprints for one cell (per-cell caches: type verdicts, results by id).

    :param namespace: the notebook namespace (never entered by the reference walk).
    :param link_filter: a ``LinkFilter`` to reuse across cells (its per-type facts about library
        classes are the expensive part); default: a new one.
    """

    def __init__(self, namespace: dict, link_filter: LinkFilter | None = None) -> None:
        import builtins  # noqa: PLC0415 - only for its dict's id

        self.link_filter = link_filter or LinkFilter(namespace)
        self._skip_ids = {id(namespace), id(builtins.__dict__)}
        self._verdicts: dict = {}
        self._by_id: dict[int, tuple[object, Fingerprint]] = {}
        #: Bytes hashed by this taker (instrumentation for tests and measurements).
        self.hashed_bytes = 0

    def take(self, value: object, hash_large: bool = True) -> Fingerprint:
        """The fingerprint of ``value``; never raises.

        :param hash_large: ``False`` leaves the digest ``None`` when the buffers exceed ``LAZY_HASH_FROM``.
        """
        cached = self._by_id.get(id(value))
        if cached is not None and cached[0] is value:
            known = cached[1]
            if not hash_large or known.digest is not None or not known.serializable:
                return known  # two names bound to one object: one fingerprint
        result = self._take(value, hash_large)
        self._by_id[id(value)] = (value, result)
        return result

    def _take(self, value: object, hash_large: bool) -> Fingerprint:
        if isinstance(value, types.ModuleType):
            name = getattr(value, "__name__", "") or ""
            return Fingerprint(id(value), frozenset(), ("module:" + str(name)).encode(), True, frozenset())
        try:
            first = _dump(value)
            objects = first.objects
            if _may_hold_temporaries(objects, self._verdicts):
                second = _dump(value)  # ``first`` stays alive: its temporaries' ids cannot come back
                persistent = {id(obj) for obj in second.objects}
                objects = [obj for obj in objects if id(obj) in persistent]
                del second
        except (Exception, RecursionError):  # noqa: BLE001 - any failure means "cannot compare"
            return self._unserializable(value)
        link_ids = self.link_filter.linking_ids(objects, value, top_always_links=False)
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            link_ids |= _array_bases([value, *objects] if type(value) is numpy.ndarray else objects, numpy)
        digest = None
        total = len(first.data) + sum(_buffer_view(buffer).nbytes for buffer in first.buffers)
        if hash_large or total - len(first.data) <= LAZY_HASH_FROM:
            hasher = hashlib.sha1(first.data, usedforsecurity=False)
            for buffer in first.buffers:
                _hash_buffer(hasher, _buffer_view(buffer))
            digest = hasher.digest()
            self.hashed_bytes += total
        return Fingerprint(id(value), frozenset(link_ids), digest, True, _code_reads(objects), total if digest else 0)

    def _unserializable(self, value: object) -> Fingerprint:
        try:
            objects = reachable_objects(value, self._skip_ids)
            link_ids = self.link_filter.linking_ids(objects, value, top_always_links=False)
            reads = _code_reads(objects)
        except Exception:  # noqa: BLE001 - links unknown: it links with nothing but itself
            link_ids, reads = {id(value)}, frozenset()
        return Fingerprint(id(value), frozenset(link_ids), None, False, reads)
