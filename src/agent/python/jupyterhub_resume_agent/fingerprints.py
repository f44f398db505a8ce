"""A variable's fingerprint: which mutable objects it reaches, and a hash of their content.

Two fingerprints of one variable, taken before and after a cell, tell whether the cell changed
it in place (``modified``); the reachable ids say which variables share state (co-variables).

How it is taken (Kishu's design, with pickle's own notion of reachability):

* The value is pickled (protocol 5, out-of-band buffers, file handles as in checkpoints) by a C
  pickler, whose memo then holds every object it reached. ``object_links.LinkFilter``
  keeps the ones that can link variables (no atoms, modules, library classes or singletons);
  numpy arrays add the array whose memory they view (``v = a[::2]`` links to ``a``).
* Content: sha1 of the pickle bytes and of each out-of-band buffer, hashed straight from the
  array's memory (big buffers in chunks on a few threads: hashlib releases the GIL). Exact, no
  sampling. Buffers above ``LAZY_HASH_FROM`` are not hashed between cells at all (``digest``
  ``None``): hashing a gigabyte costs half a second, far too much on every cell that merely reads
  it. Such a variable counts as modified by every cell that reads it (a false positive, which
  the dependency rules allow); its content is compared at checkpoint time instead, where the blob
  checksum is computed anyway.
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

import builtins
import copyreg
import hashlib
import io
import os
import pickle
import sys
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .array_views import root_array
from .code_reads import code_names, global_names_of
from .file_handles import reduce_file_handle
from .object_links import LinkFilter
from .reference_walk import reachable_objects
from .serializer import PROTOCOL

#: Buffers from this size are hashed in chunks on several threads.
_PARALLEL_FROM = 64 << 20
_CHUNK = 16 << 20
#: Variables whose buffers exceed this total are never hashed per cell (see the module doc).
LAZY_HASH_FROM = 16 << 20
#: Variables reaching more objects than this are not fingerprinted again per cell (about 10 ms).
PER_CELL_OBJECT_BUDGET = 20_000

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
    #: How many objects the pickle reached: what taking this fingerprint again would cost.
    reached: int = 0

    @property
    def too_costly_per_cell(self) -> bool:
        """Whether re-taking it after every cell that reads it would cost the user noticeable time.

        Big buffers (not hashed at all, ``digest`` ``None``) and big object graphs (a list of
        200,000 lists takes about half a second to pickle) are not fingerprinted again per cell:
        a cell that reads them counts as modifying them (a false positive the dependency rules
        allow), and their links are brought up to date at the next checkpoint, which groups
        variables afresh anyway.
        """
        return self.serializable and (self.digest is None or self.reached > PER_CELL_OBJECT_BUDGET)


def _importable(function) -> bool:
    target = sys.modules.get(getattr(function, "__module__", None) or "")
    for part in (getattr(function, "__qualname__", "") or "").split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is function


_FILE_TYPES = (io.FileIO, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)
#: Immutable atoms: bound to the same object, their content cannot have changed.
_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None), range})
_ATOM_DIGEST = b"immutable"
_IMMUTABLE_CONTAINERS = (tuple, frozenset)


def _reduce_file(obj):
    # A file handle is its path, mode and position; one open for writing raises (not comparable).
    return reduce_file_handle(obj) or obj.__reduce_ex__(PROTOCOL)


_dispatch: dict = {}


def _dispatch_table() -> dict:
    """copyreg's reductions plus the agent's file handles (rebuilt if copyreg gains entries)."""
    global _dispatch
    if len(_dispatch) != len(copyreg.dispatch_table) + len(_FILE_TYPES):
        table = dict(copyreg.dispatch_table)
        table.update((kind, _reduce_file) for kind in _FILE_TYPES)
        _dispatch = table
    return _dispatch


class _FingerprintPickler(pickle.Pickler):
    """A C pickler with notebook code saved by value, modules by name, file handles as in checkpoints.

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
    pickler.dispatch_table = _dispatch_table()
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
        self.link_filter = link_filter or LinkFilter(namespace)
        self._skip_ids = {id(namespace), id(builtins.__dict__)}
        self._verdicts: dict = {}
        self._by_id: dict[int, tuple[object, Fingerprint]] = {}
        #: Bytes hashed by this taker (instrumentation for tests and measurements).
        self.hashed_bytes = 0

    def take(self, value: object, hash_large: bool = True, previous: Fingerprint | None = None) -> Fingerprint:
        """The fingerprint of ``value``; never raises.

        :param hash_large: ``False`` leaves the digest ``None`` when the buffers exceed ``LAZY_HASH_FROM``.
        :param previous: the value's last fingerprint, if any: when the content hash is the same
            and every object it linked through is still reached, it is returned as it is (no
            second pickle to tell temporaries apart: the usual case of a cell that only reads).
        """
        cached = self._by_id.get(id(value))
        if cached is not None and cached[0] is value:
            known = cached[1]
            if not hash_large or known.digest is not None or not known.serializable:
                return known  # two names bound to one object: one fingerprint
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a library's pickling warnings must not land in the cell
            result = self._take(value, hash_large, previous)
        self._by_id[id(value)] = (value, result)
        return result

    def _take(self, value: object, hash_large: bool, previous: Fingerprint | None) -> Fingerprint:
        if type(value) in _ATOMS:
            return Fingerprint(id(value), frozenset(), _ATOM_DIGEST, True, frozenset())
        if isinstance(value, types.ModuleType):
            name = getattr(value, "__name__", "") or ""
            return Fingerprint(id(value), frozenset(), ("module:" + str(name)).encode(), True, frozenset())
        try:
            first = _dump(value)
        except (Exception, RecursionError):  # noqa: BLE001 - any failure means "cannot compare"
            return self._unserializable(value)
        digest, total = self._digest(first, hash_large)
        if (
            previous is not None
            and previous.serializable
            and digest is not None
            and digest == previous.digest
            and previous.link_ids <= self._link_ids(value, first.objects)
        ):
            # Same bytes, and every object it shared is still reached: unchanged. (While those
            # objects live, no temporary of this pickle can have one of their ids.)
            return previous
        objects = first.objects
        if _may_hold_temporaries(objects, self._verdicts):
            try:
                second = _dump(value)  # ``first`` stays alive: its temporaries' ids cannot come back
            except (Exception, RecursionError):  # noqa: BLE001
                return self._unserializable(value)
            persistent = {id(obj) for obj in second.objects}
            objects = [obj for obj in objects if id(obj) in persistent]
            del second
        link_ids = self._link_ids(value, objects)
        return Fingerprint(
            id(value), frozenset(link_ids), digest, True, _code_reads(objects), total if digest else 0, len(first.objects)
        )

    def _digest(self, dump: _Dump, hash_large: bool) -> tuple[bytes | None, int]:
        total = len(dump.data) + sum(_buffer_view(buffer).nbytes for buffer in dump.buffers)
        if not hash_large and total - len(dump.data) > LAZY_HASH_FROM:
            return None, total
        hasher = hashlib.sha1(dump.data, usedforsecurity=False)
        for buffer in dump.buffers:
            _hash_buffer(hasher, _buffer_view(buffer))
        self.hashed_bytes += total
        return hasher.digest(), total

    def _link_ids(self, value: object, objects: list) -> set[int]:
        # Tuples and frozensets carry no state of their own (what they hold is in the memo too),
        # and constant tuples of library code turn up in unrelated pickles: they never link.
        link_ids = self.link_filter.linking_ids(
            [obj for obj in objects if not isinstance(obj, _IMMUTABLE_CONTAINERS)], value, top_always_links=False
        )
        if isinstance(value, _IMMUTABLE_CONTAINERS):
            link_ids.discard(id(value))
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            link_ids |= _array_bases([value, *objects] if type(value) is numpy.ndarray else objects, numpy)
        return link_ids

    def _unserializable(self, value: object) -> Fingerprint:
        try:
            objects = reachable_objects(value, self._skip_ids)
            link_ids = self.link_filter.linking_ids(objects, value, top_always_links=False)
            reads = _code_reads(objects)
        except Exception:  # noqa: BLE001 - links unknown: it links with nothing but itself
            link_ids, reads = {id(value)}, frozenset()
        return Fingerprint(id(value), frozenset(link_ids), None, False, reads)
