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
  ids each time. When the memo holds objects pickled that way, and something besides the value
  itself links, the value is pickled a second time with the first memo still alive, and only
  ids present in both are kept.
* A value pickle cannot save (generator, lock, socket, open file for writing) is
  ``serializable=False``: its content cannot be compared, so a cell that can reach it counts as
  modifying it. Its links come from a walk of real references (``reference_walk``); a walk cut
  short leaves them unknown. Types pickle is known to refuse are recognised from a table before
  any pickling (``unserializable_types``): no failed attempt to pay for.
* Whether a checkpoint can store the value anyway (``unstorable_reason``, which ``group_costs``
  reports) follows the checkpoint's own rule, ``serializer.dump``: pickle, else dill, which saves
  locks, events, queues and futures by making new ones, but no generator, socket or open
  database connection. A value the fingerprint's pickle saved is stored (its notebook code too,
  which dill saves by value). For one it refused, the answer comes as cheaply as it can: from
  the table when the value's own type settles it; else from a second C pickle that saves what
  dill saves as dill does and stops at what neither can save (``_StoragePickler``); only for a
  failure neither explains, from dill itself, within ``DILL_CHECK_BYTES``. Ordinary values never
  meet dill here. A value too big to check after a cell keeps pickle's verdict, and says so.
  Without dill in the kernel, pickle's verdict is the checkpoint's (notebook code included).

Big object graphs are not pickled in full after a cell (``take(..., estimate=True)``). A sample
of the graph (``graph_estimate``) says how many objects pickle would memoize: first thing for a
big built-in container, else once the value's pickle outgrows one frame (``FRAME_BYTES``; a
value whose pickle fits is small, and fingerprinted as above). Past ``PER_CELL_OBJECT_BUDGET``,
or past ``IN_BAND_BUDGET`` pickle bytes (a big graph inside a library object, which the sample
does not enter), the fingerprint is an estimate: no digest, ``reached`` and ``size`` estimated
(``size_exact`` false), ``code_reads`` from the notebook code in the sample and in the
namespace, and ``links_known`` false, with ``link_ids`` holding the value's own id only (plus,
if it was known before, the ids it linked through then). Such a value is too costly to measure
per cell: every cell that may reach it counts as modifying it, and ``covariables`` joins it
conservatively with every variable read, bound or modified by a cell that reads or modifies
it. Only values bound or changed by a cell the agent saw are estimated: one the agent did not
see bound (first cell, after a restore) is pickled in full, since no recorded cell explains
what it shares. A value too costly to measure that a cell may have changed is not measured
either (``unmeasured``): its links become unknown too, unless it cannot hold other objects at
all (a numeric array).

Modules are never pickled: their state is not tracked (a known gap, like objects reached only
through a module or a library closure, and notebook code reached only through the unsampled
part of an estimated graph that no variable holds: a class deleted while instances remain).
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
from dataclasses import dataclass, replace
from itertools import compress
from operator import itemgetter

from .array_views import root_array
from .code_reads import code_names, global_names_of, is_notebook_code
from .file_handles import OpenForWriting, reduce_file_handle
from .graph_estimate import GraphEstimate, estimate_graph, is_big_container
from .object_links import LinkFilter
from .reference_walk import reachable_objects
from .serializer import (
    NOTEBOOK_CODE,
    PROTOCOL,
    CappedBuffer,
    NotSerializable,
    OverBudget,
    dill_available,
    dump_with_dill,
    unserializable_reason,
    without_dill,
)
from .unserializable_types import known_unserializable, known_unstorable, type_refusal

#: Buffers from this size are hashed in chunks on several threads.
_PARALLEL_FROM = 64 << 20
_CHUNK = 16 << 20
#: Variables whose buffers exceed this total are never hashed per cell (see the module doc).
LAZY_HASH_FROM = 16 << 20
#: Variables reaching more objects than this are not fingerprinted again per cell (about 10 ms).
PER_CELL_OBJECT_BUDGET = 20_000
#: Pickle bytes (out-of-band buffers aside) past which a value bound by a cell is estimated too:
#: about what the object budget writes, for graphs the estimate does not enter (library objects).
IN_BAND_BUDGET = 1 << 20
#: What the C pickler writes at a time (protocol 5 frames): a pickle that fits is small.
FRAME_BYTES = 64 << 10
#: What dill may write to tell whether it can save a value pickle refused (dill's pickler runs in
#: Python, about a hundred times slower than the C one: one frame is tens of milliseconds).
DILL_CHECK_BYTES = FRAME_BYTES
_NOT_CHECKED = "not checked whether dill can save it (too big to check after a cell)"

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
    ``serializable``: the fingerprint's pickle saved it, so its content is compared (whether a
    checkpoint can store it is ``unstorable_reason``).
    ``code_reads``: globals that notebook functions and classes it reaches may read.
    """

    value_id: int
    link_ids: frozenset
    digest: bytes | None
    serializable: bool
    code_reads: frozenset
    hashed_bytes: int = 0
    #: How many objects the pickle reached: what taking this fingerprint again would cost (an
    #: estimate when ``size_exact`` is false).
    reached: int = 0
    #: Serialized size in bytes (pickle plus out-of-band buffers); 0 when unknown.
    size: int = 0
    #: Whether ``size`` is the exact pickled size (``False``: an estimate, or unknown).
    size_exact: bool = False
    #: Why the value cannot be serialized (``None`` when it can).
    unserializable_reason: str | None = None
    #: Whether ``link_ids`` holds every object through which the value shares state. ``False``:
    #: a stand-in (an estimated graph, a reference walk cut short, or a value a cell may have
    #: changed without it being measured again), which ``covariables`` joins conservatively.
    links_known: bool = True
    #: Why a checkpoint could not store it, by ``serializer.dump``'s rule (pickle, else dill; see
    #: the module doc); ``None`` when a checkpoint stores it. What ``group_costs`` reports: a lock
    #: is not ``serializable`` (its content cannot be compared), yet a checkpoint stores it.
    unstorable_reason: str | None = None

    @property
    def too_costly_per_cell(self) -> bool:
        """Whether re-taking it after every cell that reads it would cost the user noticeable time.

        Big buffers (not hashed at all, ``digest`` ``None``) and big object graphs (a list of
        200,000 lists takes about half a second to pickle) are not fingerprinted again per cell:
        a cell that reads them counts as modifying them (a false positive the dependency rules
        allow). What such a cell did to their links is not measured either: see ``unmeasured``.
        """
        return self.serializable and (self.digest is None or self.reached > PER_CELL_OBJECT_BUDGET)


def _importable(function) -> bool:
    known = _importable_functions.get(function)
    if known is None:
        if len(_importable_functions) > 1000:
            _importable_functions.clear()
        target = sys.modules.get(getattr(function, "__module__", None) or "")
        for part in (getattr(function, "__qualname__", "") or "").split("."):
            target = getattr(target, part, None)
            if target is None:
                break
        known = _importable_functions[function] = target is function
    return known


#: Library functions met in pickles (numpy's reconstructors in every array's) → importable by name.
_importable_functions: dict = {}


_FILE_TYPES = (io.FileIO, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)
#: Immutable atoms: bound to the same object, their content cannot have changed.
_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None), range})
_ATOM_DIGEST = b"immutable"
_IMMUTABLE_CONTAINERS = (tuple, frozenset)
#: Types whose instances can reach no other object, whatever is done to them in place.
_REFERENCE_FREE = frozenset({bytearray})


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


class _Unstorable(Exception):
    """``_StoragePickler`` met an object neither pickle nor dill can save; the message is why."""


class _StoragePickler(_FingerprintPickler):
    """The fingerprint's pickler, going on past what pickle refuses but a checkpoint's dill saves.

    It answers "would ``serializer.dump`` store this?" at C speed for a value the fingerprint's
    pickle refused. Types dill saves are saved as dill saves them (a lock as nothing: dill makes
    a new one; a weak reference as its referent), objects that pickle refuses only for the locks
    they hold are pickled through, and a type neither can save stops it (``_Unstorable``). It
    saves notebook code by value, as dill does. Only values pickle refused meet it: one more
    table lookup per object is affordable there.
    """

    def reducer_override(self, obj):
        refusal = type_refusal(type(obj))
        if refusal is None:
            return super().reducer_override(obj)
        if not refusal.dill_saves:
            raise _Unstorable(refusal.reason)
        if refusal.parts is None:
            return NotImplemented  # it holds locks: its state is pickled, and they are met in turn
        return list, (), None, iter([_MARKER + "dill", *refusal.parts(obj)])


def _leave_out(_buffer) -> None:
    # A false answer keeps an array's memory out of the pickle: only whether it pickles matters.
    return None


def _storage_dump(value, cap: int | None) -> None:
    """Pickles ``value`` with ``_StoragePickler``, bytes thrown away; raises ``OverBudget`` past ``cap``."""
    out = io.BytesIO() if cap is None else CappedBuffer(cap)
    pickler = _StoragePickler(out, protocol=PROTOCOL, buffer_callback=_leave_out)
    pickler.dispatch_table = _dispatch_table()
    pickler.dump(value)


def _code_pickle_refuses(objects: list, kinds: set) -> str | None:
    """Why a checkpoint's pickle would refuse code among ``objects`` that fingerprints save by value.

    Notebook functions and classes, and library functions not importable by name: dill saves
    them by value, so this matters only in a kernel without dill.
    """
    code_kinds = {kind for kind in kinds if kind is types.FunctionType or issubclass(kind, type)}
    if not code_kinds:
        return None
    for obj in _of_kinds(objects, code_kinds):
        if getattr(obj, "__module__", None) == "__main__":
            return NOTEBOOK_CODE
        if type(obj) is types.FunctionType and not _importable(obj):
            return f"cannot pickle {obj.__module__}.{obj.__qualname__} by name"
    return None


@dataclass
class _Dump:
    data: bytes
    buffers: list
    #: The pickler's memo: ``id(obj)`` → (memo index, obj); it keeps every memoized object alive.
    memo: dict

    @property
    def objects(self) -> list:
        return list(map(itemgetter(1), self.memo.values()))


def _dump(value, cap: int | None = None) -> _Dump:
    """Pickles ``value`` for a fingerprint; raises ``OverBudget`` past ``cap`` bytes, if given."""
    buffers: list = []
    out = io.BytesIO() if cap is None else CappedBuffer(cap)
    pickler = _FingerprintPickler(out, protocol=PROTOCOL, buffer_callback=buffers.append)
    pickler.dispatch_table = _dispatch_table()
    pickler.dump(value)
    return _Dump(out.getvalue(), buffers, pickler.memo.copy())


def _plain_instance_type(kind: type) -> bool:
    # object.__reduce_ex__ hands pickle the instance's own __dict__: nothing temporary.
    return (
        kind.__reduce_ex__ is object.__reduce_ex__
        and kind.__reduce__ is object.__reduce__
        and getattr(kind, "__getstate__", object.__getstate__) is object.__getstate__
        and "__slots__" not in kind.__dict__
        and kind not in copyreg.dispatch_table
    )


def _may_hold_temporaries(kinds: set, verdicts: dict) -> bool:
    for kind in kinds:
        verdict = verdicts.get(kind)
        if verdict is None:
            verdict = not (
                kind in _DIRECT_TYPES
                or kind in _REDUCED_HERE
                or issubclass(kind, type)
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


def _of_kinds(objects: list, wanted: set) -> list:
    """The objects whose type is in ``wanted`` (one pass at C speed)."""
    return list(compress(objects, map(wanted.__contains__, map(type, objects))))


def _array_bases(arrays: list) -> set[int]:
    ids = set()
    for obj in arrays:
        if obj.base is not None:
            root = root_array(obj)
            if root is not obj:
                ids.add(id(root))
    return ids


def _code_reads(objects: list, kinds: set | None = None) -> frozenset:
    """Globals the code objects, notebook functions and notebook classes among ``objects`` may read.

    :param kinds: the types of ``objects``, when known (most memos hold no code at all).
    """
    kinds = set(map(type, objects)) if kinds is None else kinds
    code_kinds = {kind for kind in kinds if kind is types.CodeType or kind is types.FunctionType or issubclass(kind, type)}
    if not code_kinds:
        return frozenset()
    names: set[str] = set()
    seen: set[int] = set()
    for obj in _of_kinds(objects, code_kinds):
        if type(obj) is types.CodeType:
            code_names(obj, names, seen)
        elif is_notebook_code(obj):
            names.update(global_names_of(obj, seen) or ())
    return frozenset(names)


class FingerprintTaker:
    """Takes fingerprints for one cell (per-cell caches: type verdicts, results by id).

    :param namespace: the notebook namespace (never entered by the reference walk).
    :param link_filter: a ``LinkFilter`` to reuse across cells (its per-type facts about library
        classes are the expensive part); default: a new one.
    """

    def __init__(self, namespace: dict, link_filter: LinkFilter | None = None) -> None:
        self.namespace = namespace
        self.link_filter = link_filter or LinkFilter(namespace)
        self._skip_ids = {id(namespace), id(builtins.__dict__)}
        self._verdicts: dict = {}
        self._by_id: dict[int, tuple[object, Fingerprint]] = {}
        self._dill_found: bool | None = None
        #: Bytes hashed by this taker (instrumentation for tests and measurements).
        self.hashed_bytes = 0

    def take(
        self, value: object, hash_large: bool = True, previous: Fingerprint | None = None, estimate: bool = False
    ) -> Fingerprint:
        """The fingerprint of ``value``; never raises.

        :param hash_large: ``False`` leaves the digest ``None`` when the buffers exceed ``LAZY_HASH_FROM``.
        :param previous: the value's last fingerprint, if any: when the content hash is the same
            and every object it linked through is still reached, it is returned as it is (no
            second pickle to tell temporaries apart: the usual case of a cell that only reads).
        :param estimate: ``True`` (a value bound or changed by a cell the agent saw) lets a
            graph past ``PER_CELL_OBJECT_BUDGET`` objects or ``IN_BAND_BUDGET`` pickle bytes be
            estimated instead of pickled in full (``links_known`` false, see the module doc).
        """
        kind = type(value)
        if kind in _ATOMS:
            return Fingerprint(id(value), frozenset(), _ATOM_DIGEST, True, frozenset(), size=sys.getsizeof(value))
        if kind is types.ModuleType:
            name = getattr(value, "__name__", "") or ""
            return Fingerprint(id(value), frozenset(), ("module:" + str(name)).encode(), True, frozenset())
        cached = self._by_id.get(id(value))
        if cached is not None and cached[0] is value:
            known = cached[1]
            if not hash_large or known.digest is not None or not known.serializable:
                return known  # two names bound to one object: one fingerprint
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a library's pickling warnings must not land in the cell
            result = self._take(value, hash_large, previous, estimate)
        if not result.links_known and previous is not None and not previous.link_ids <= result.link_ids:
            # Whatever it shared before, it may share still.
            result = replace(result, link_ids=result.link_ids | previous.link_ids)
        self._by_id[id(value)] = (value, result)
        return result

    def unmeasured(self, value: object, old: Fingerprint) -> Fingerprint:
        """``old`` after a cell that may have changed ``value`` without it being fingerprinted again.

        Its content may have changed (the cell counts as modifying it), and so may what it
        reaches: ``links_known`` becomes false, so that ``covariables`` joins it with what the
        cell touched. A numeric array or a bytearray cannot come to reach another object: its
        fingerprint stands.
        """
        kind = type(value)
        numpy = sys.modules.get("numpy")
        if kind in _REFERENCE_FREE or (numpy is not None and kind is numpy.ndarray and not value.dtype.hasobject):
            return old
        return replace(old, links_known=False) if old.links_known else old

    def _take(self, value: object, hash_large: bool, previous: Fingerprint | None, estimate: bool) -> Fingerprint:
        reason = known_unserializable(value)
        if reason is not None:
            # A walk cut short last time would be cut short again: its links stay unknown.
            return self._unserializable(value, reason, walk=previous is None or previous.links_known, estimate=estimate)
        try:
            first = self._first_dump(value, estimate)
        except (Exception, RecursionError) as error:  # noqa: BLE001 - any failure means "cannot compare"
            return self._unserializable(value, unserializable_reason(error), estimate=estimate)
        if isinstance(first, Fingerprint):
            return first  # too big: estimated
        digest, total = self._digest(first, hash_large)
        if (
            previous is not None
            and previous.serializable
            and digest is not None
            and digest == previous.digest
            and self._still_reaches(value, first, previous.link_ids)
        ):
            # Same bytes, and every object it shared is still reached: unchanged. (While those
            # objects live, no temporary of this pickle can have one of their ids.)
            return previous
        objects = first.objects
        reached = len(objects)
        kinds = set(map(type, objects))
        link_ids = self._link_ids(value, objects, kinds)
        # Temporaries only matter when something besides the value itself links (not so for a
        # numeric array, whose reduction makes tuples and strings only).
        if len(link_ids - {id(value)}) and _may_hold_temporaries(kinds, self._verdicts):
            try:
                second = _dump(value)  # ``first`` stays alive: its temporaries' ids cannot come back
            except (Exception, RecursionError) as error:  # noqa: BLE001
                return self._unserializable(value, unserializable_reason(error), estimate=estimate)
            persistent = first.memo.keys() & second.memo.keys()
            del second
            objects = list(map(itemgetter(1), map(first.memo.__getitem__, persistent)))
            kinds = set(map(type, objects))
            link_ids = self._link_ids(value, objects, kinds)
        # Notebook code is stored by value, which takes dill (a question asked only when it matters).
        unstorable = _code_pickle_refuses(objects, kinds)
        if unstorable and self._dill_ready():
            unstorable = None
        return Fingerprint(
            id(value),
            frozenset(link_ids),
            digest,
            True,
            _code_reads(objects, kinds),
            total if digest else 0,
            reached,
            size=total,
            size_exact=True,
            unstorable_reason=without_dill(unstorable) if unstorable else None,
        )

    def _first_dump(self, value: object, estimate: bool) -> _Dump | Fingerprint:
        """The value's pickle or, with ``estimate``, the stand-in fingerprint of a graph too big for one.

        A big built-in container is estimated first: even one frame of its pickle can cost more
        than the estimate (a frame of instances gives each its ``__dict__``, and the allocations
        set off the garbage collector). Anything else is pickled, and if its pickle outgrows one
        frame (``FRAME_BYTES``, most never do), estimated. A graph the estimate misses (inside a
        library object) is still stopped by ``IN_BAND_BUDGET``.
        """
        if not estimate:
            return _dump(value)
        if not is_big_container(value):
            try:
                return _dump(value, FRAME_BYTES)
            except OverBudget:
                pass
        graph = estimate_graph(value, self._skip_ids)
        if graph is not None and graph.unserializable_reason is not None:
            return self._unserializable(value, graph.unserializable_reason, graph, estimate=True)
        if graph is not None and graph.objects > PER_CELL_OBJECT_BUDGET:
            return self._estimated(value, graph, graph.objects, graph.size)
        try:
            return _dump(value, IN_BAND_BUDGET)
        except OverBudget as over:
            # Past the budget, and at least that many bytes.
            objects = max(graph.objects if graph else 0, PER_CELL_OBJECT_BUDGET + 1)
            return self._estimated(value, graph, objects, max(graph.size if graph else 0, over.written))

    def _estimated(self, value: object, graph: GraphEstimate | None, objects: int, size: int) -> Fingerprint:
        """The stand-in fingerprint of a graph too big to pickle per cell (see the module doc)."""
        link_ids = frozenset((id(value),)) if self.link_filter.links(value) else frozenset()
        # Without dill, notebook code in the sample is what a checkpoint's pickle would refuse.
        needs_dill = graph is not None and graph.notebook_code and not self._dill_ready()
        return Fingerprint(
            id(value),
            link_ids,
            None,
            True,
            self._estimated_code_reads(graph),
            reached=objects,
            size=size,
            size_exact=False,
            links_known=False,
            unstorable_reason=without_dill(NOTEBOOK_CODE) if needs_dill else None,
        )

    def _estimated_code_reads(self, graph: GraphEstimate | None) -> frozenset:
        """What the notebook code of a graph known only by its estimate may read.

        The sample's notebook code, plus that of every notebook function and class bound in the
        namespace: stand-ins for instances of notebook classes the sample missed.
        """
        names: set[str] = set()
        seen: set[int] = set()
        for code in (*(graph.notebook_code if graph is not None else ()), *list(self.namespace.values())):
            if is_notebook_code(code):
                names.update(global_names_of(code, seen) or ())
        return frozenset(names)

    def _digest(self, dump: _Dump, hash_large: bool) -> tuple[bytes | None, int]:
        total = len(dump.data) + sum(_buffer_view(buffer).nbytes for buffer in dump.buffers)
        if not hash_large and total - len(dump.data) > LAZY_HASH_FROM:
            return None, total
        hasher = hashlib.sha1(dump.data, usedforsecurity=False)
        for buffer in dump.buffers:
            _hash_buffer(hasher, _buffer_view(buffer))
        self.hashed_bytes += total
        return hasher.digest(), total

    def _still_reaches(self, value: object, dump: _Dump, link_ids: frozenset) -> bool:
        """Whether every id of ``link_ids`` is still one the value links through."""
        # Usually they are all in the memo (a set operation); the value itself and the bases of
        # array views are not, and need the full link ids.
        missing = link_ids - dump.memo.keys()
        return not missing or missing <= self._link_ids(value, dump.objects)

    def _link_ids(self, value: object, objects: list, kinds: set | None = None) -> set[int]:
        """:param kinds: the types of ``objects``, when known."""
        # Tuples and frozensets carry no state of their own (what they hold is in the memo too),
        # and constant tuples of library code turn up in unrelated pickles: they never link.
        link_ids = self.link_filter.linking_ids(objects, value, top_always_links=False, ignored_bases=_IMMUTABLE_CONTAINERS)
        if isinstance(value, _IMMUTABLE_CONTAINERS):
            link_ids.discard(id(value))
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            kinds = set(map(type, objects)) if kinds is None else kinds
            arrays = _of_kinds(objects, {numpy.ndarray}) if numpy.ndarray in kinds else []
            if type(value) is numpy.ndarray:
                arrays.append(value)
            link_ids |= _array_bases(arrays)
        return link_ids

    def _dill_ready(self) -> bool:
        """Whether a checkpoint can fall back to dill in this kernel (looked up once per taker)."""
        if self._dill_found is None:
            self._dill_found = dill_available()
        return self._dill_found

    def _unstorable_reason(
        self, value: object, pickle_reason: str, graph: GraphEstimate | None, estimate: bool
    ) -> str | None:
        """Why a checkpoint could not store ``value``, which the fingerprint's pickle refused; ``None`` when it can.

        The checkpoint's rule (``serializer.dump``), answered as cheaply as it can be: see the
        module doc. The reason is the one a checkpoint would give, or one of the same kind.

        :param pickle_reason: why the fingerprint's pickle refused it.
        :param graph: its estimate, if one was taken (a graph past the budget is not pickled again).
        :param estimate: whether a big graph may be left unchecked (``take``'s ``estimate``).
        """
        if not self._dill_ready():
            return without_dill(pickle_reason)
        known = known_unstorable(value)
        if known is not None:
            return known
        if graph is not None and graph.objects > PER_CELL_OBJECT_BUDGET:
            # Too big to pickle after a cell: the sample is all there is to go on.
            return graph.unstorable_reason or f"{pickle_reason}; {_NOT_CHECKED}"
        try:
            _storage_dump(value, IN_BAND_BUDGET if estimate else None)
            return None
        except _Unstorable as refused:
            return str(refused)
        except OpenForWriting as error:  # refused by both serializers' file reducer
            return unserializable_reason(error)
        except OverBudget:
            return f"{pickle_reason}; {_NOT_CHECKED}"
        except (Exception, RecursionError):  # noqa: BLE001 - something the table does not know: ask dill
            pass
        try:
            dump_with_dill(value, set(), DILL_CHECK_BYTES)
        except NotSerializable as error:
            return str(error)
        except OverBudget:
            return f"{pickle_reason}; {_NOT_CHECKED}"
        return None

    def _unserializable(
        self,
        value: object,
        reason: str,
        graph: GraphEstimate | None = None,
        walk: bool = True,
        estimate: bool = False,
    ) -> Fingerprint:
        """The fingerprint of a value pickle cannot save (which a checkpoint may still store).

        :param graph: its estimate, if one was taken (a graph past the budget is not walked).
        :param walk: ``False`` leaves its links unknown without walking its references.
        :param estimate: ``take``'s ``estimate``.
        """
        objects, complete = [value], False
        try:
            if walk and (graph is None or graph.objects <= PER_CELL_OBJECT_BUDGET):
                objects, complete = reachable_objects(value, self._skip_ids)
            link_ids = self.link_filter.linking_ids(objects, value, top_always_links=False)
            reads = _code_reads(objects)
        except Exception:  # noqa: BLE001 - the walk failed: links unknown
            link_ids, reads, complete = set(), frozenset(), False
        if not complete:
            # Joined conservatively (``covariables``); reads as for an estimated graph.
            link_ids.add(id(value))
            reads |= self._estimated_code_reads(graph)
        return Fingerprint(
            id(value),
            frozenset(link_ids),
            None,
            False,
            reads,
            unserializable_reason=reason,
            links_known=complete,
            unstorable_reason=self._unstorable_reason(value, reason, graph, estimate),
        )
