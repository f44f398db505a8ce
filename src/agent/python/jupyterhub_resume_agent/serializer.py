"""Pickling a set of variables into (pickle bytes, out-of-band buffers), and back.

Protocol 5 with a ``buffer_callback``: numpy and pandas data leave the pickle as
``PickleBuffer``s pointing at the arrays' own memory, so nothing large is copied. dill is the
fallback for what pickle cannot do by value (lambdas, functions and classes defined in the
notebook). After each dump the pickler's memo is kept: it says which objects the variable
reaches (see ``object_links``).

Notebook code without dill's slowness. pickle saves a function or class by name, and a fresh
kernel has no ``__main__.Point``; dill saves it by value, but its pickler runs in Python: a
notebook holding 100,000 instances of a notebook class (and 100,000 small dicts) took 10 s to
checkpoint, where ``pickle.dumps`` of the instances takes 0.16 s. So a value whose C pickle
refers to notebook code by name keeps that pickle, and only the code itself is handed
to dill: the blob (a ``"dill"`` one, since loading it takes dill) holds first a dill pickle of
``(_CODE_HEADER, {qualname: function or class}, shares_memo)``, then the C pickle of the value,
whose ``__main__.<qualname>`` lookups the loader answers from that dict. Each class is saved
once and comes back as one class object, the one the variables bound to it get too. When
something besides the code itself is reached both from the code and from the value (a class
attribute list also bound to a variable, a function's default dict), the value is pickled a
second time by a C pickler whose memo starts as dill's (``shares_memo``), and both pickles are
loaded by one unpickler, so the shared object comes back once. (Setting an unpickler's memo
would not do: CPython leaves its count of entries at zero, and protocol 5's ``MEMOIZE`` would
overwrite them; a pickler's memo can be set.) A group that is one value plus notebook code its
pickle already carries (``points`` with ``Point``) reuses that pickle, a third pickle binding
the code's own variables (``with_code_bound``).

Why not in one pass: the C pickler saves classes and functions itself, before it consults a
``dispatch_table`` (so a table never sees them). A ``reducer_override`` sees them, but it is a
Python call for every object pickled (100,000 instances: 0.16 s without one, 0.20 s with one
that returns at once), and what it would have to return for a class is dill's by-value form,
which only dill's pure-Python pickler produces, with what the class shares with the value
intact. Pickling first and asking dill afterwards costs nothing per object: the memo says which
notebook code the pickle reached (``_notebook_code``). That notebook now checkpoints in 0.6 to
0.9 s here (both variables pickled, linked and grouped). A C pickle that refers
to anything else in ``__main__`` by name (a notebook ``functools.lru_cache`` function, whose
reduction is its name) is found by ``_may_name_main`` and goes to dill as a whole, as before;
so does a value the C pickler refuses (a lambda, a class defined inside a function). Code dill
itself can only save by name (a notebook enum) is refused as dill would refuse the whole value.

The garbage collector is paused while pickling and unpickling: every reduction makes tuples the
collector tracks, and each full collection walks the whole growing graph (a third of the time
for 100,000 instances) while nothing it could free exists (the memo holds every object).

``dump``'s rule (pickle, else dill) is also what cell records report as ``group_costs``:
fingerprints answer it cheaply where they can, and otherwise ask ``dump_with_dill`` itself,
within a byte budget (``fingerprints``).
"""

from __future__ import annotations

import copyreg
import gc
import importlib.util
import io
import pickle
import pickletools
import sys
import threading
import types
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import compress
from operator import itemgetter

from .array_views import reduce_view
from .code_reads import is_notebook_code
from .file_handles import reduce_file_handle

PROTOCOL = 5


class NotSerializable(Exception):
    """A value neither pickle nor dill can (or may) serialize; the message is the reason.

    ``memo_objects`` holds what the pickler memoized before it gave up: enough to link the value
    to the variables it shares objects with.
    """

    def __init__(self, reason: str, memo_objects: list | None = None) -> None:
        super().__init__(reason)
        self.memo_objects = memo_objects or []


class CodeRefused(NotSerializable):
    """dill refused the notebook code a C pickle reached: dill would refuse the whole value too."""


_FILE_TYPES = (io.FileIO, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)
#: The C ``RLock`` and the pure-Python one ``threading`` falls back to.
_RLOCK_TYPES = frozenset(kind for kind in (type(threading.RLock()), getattr(threading, "_PyRLock", None)) if kind is not None)


def _reduce_rlock(lock):
    # Saved as a new, unlocked RLock. One held at checkpoint time cannot be restored held: only
    # its owner may release it, and the thread that owned it does not exist in the new kernel,
    # so it would stay locked for good. (dill's own reducer brings even an unlocked RLock back
    # looking held: ``acquire(blocking=False)`` fails and ``acquire()`` never returns.)
    return type(lock), ()


@contextmanager
def _gc_paused():
    """Pauses the garbage collector for a dump or a load (see the module doc), if it runs at all."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: Why pickle refuses a value that refers to notebook code by name (dill saves that code by value).
NOTEBOOK_CODE = "refers to a function or class defined in the notebook"


def without_dill(reason: str) -> str:
    """pickle's ``reason``, worded for a kernel where dill, the fallback, is missing."""
    return f"{reason} (and dill is not installed)"


class OverBudget(Exception):
    """A pickle stopped past its byte budget (``CappedBuffer``)."""

    def __init__(self, written: int) -> None:
        super().__init__(f"more than {written} bytes")
        self.written = written


class CappedBuffer(io.BytesIO):
    """Where a pickle goes when it must not grow past ``cap`` bytes (raises ``OverBudget``).

    Picklers hand over their output a frame (64 KiB) at a time, so the check costs nothing.
    """

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def write(self, data) -> int:
        written = self.tell() + memoryview(data).nbytes
        if written > self.cap:
            raise OverBudget(written)
        return super().write(data)


class ReducerMixin:
    """What pickle and dill get wrong by default, fixed per pickler.

    numpy views of user arrays stay views (``array_views``); file handles are saved as a
    description and never reopened for writing (``file_handles``); an ``RLock`` comes back as a
    new, unlocked one (``_reduce_rlock``: dill's comes back held). Call ``prepare`` before
    dumping; ``file_ids`` then collects the file handles handled here. The C pickler gets a
    per-pickler ``dispatch_table`` (looked up in C, so plain objects cost nothing extra; a
    ``reducer_override`` would be a Python call per object, +45% on 200k small instances);
    dill's pure-Python pickler, whose own dispatch would win over that table, uses
    ``reduce_special`` as its ``reducer_override``.
    """

    view_root_ids: set[int] = frozenset()

    def prepare(self, view_root_ids: set[int]) -> None:
        """Sets the user arrays whose views are kept as views, and resets ``file_ids``."""
        self.view_root_ids = view_root_ids
        self.file_ids = set()

    def _reduce_file(self, obj):
        recipe = reduce_file_handle(obj)
        if recipe is None:
            return None
        self.file_ids.add(id(obj))
        return recipe

    def reduce_special(self, obj):
        """dill's ``reducer_override``: a recipe for views, files and RLocks, ``NotImplemented`` otherwise."""
        if type(obj) in _RLOCK_TYPES:
            return _reduce_rlock(obj)
        if isinstance(obj, io.IOBase):
            recipe = self._reduce_file(obj)
            if recipe is not None:
                return recipe
        elif self.view_root_ids and type(obj).__name__ == "ndarray":
            recipe = reduce_view(obj, self.view_root_ids)
            if recipe is not None:
                return recipe
        return NotImplemented


class _Pickler(ReducerMixin, pickle.Pickler):
    """The C pickler with the agent's reducers in its own ``dispatch_table``."""

    def prepare(self, view_root_ids: set[int]) -> None:
        """Sets up the dispatch table for this dump (see ``ReducerMixin.prepare``)."""
        super().prepare(view_root_ids)
        table = copyreg.dispatch_table.copy()  # an own table replaces copyreg's: start from it
        for kind in _FILE_TYPES:
            table[kind] = self._reduce_file_or_default
        for kind in _RLOCK_TYPES:
            table[kind] = _reduce_rlock
        numpy = sys.modules.get("numpy")
        if numpy is not None and view_root_ids:
            table[numpy.ndarray] = self._reduce_array
        self.dispatch_table = table

    def _reduce_file_or_default(self, obj):
        return self._reduce_file(obj) or obj.__reduce_ex__(PROTOCOL)

    def _reduce_array(self, obj):
        return reduce_view(obj, self.view_root_ids) or obj.__reduce_ex__(PROTOCOL)


_dill_pickler_class = None


def _dill():
    # dill is optional: a kernel without it still checkpoints everything pickle can do.
    try:
        import dill  # noqa: PLC0415 - imported lazily on purpose
    except ImportError:
        return None
    return dill


_dill_found = False


def dill_available() -> bool:
    """Whether ``dump`` can fall back to dill in this kernel.

    Found without importing dill (a tenth of a second): fingerprints ask after cells. Once
    found, not searched for again; a kernel without it looks again (it may be installed later).
    """
    global _dill_found
    if "dill" in sys.modules:
        return sys.modules["dill"] is not None  # ``None``: imports of it are blocked
    if not _dill_found:
        try:
            _dill_found = importlib.util.find_spec("dill") is not None
        except (ImportError, ValueError):
            return False
    return _dill_found


def _dill_pickler(dill):
    global _dill_pickler_class
    if _dill_pickler_class is None:

        class _DillPickler(ReducerMixin, dill.Pickler):
            """dill's pickler with the agent's reducers."""

            reducer_override = ReducerMixin.reduce_special

        _dill_pickler_class = _DillPickler
    return _dill_pickler_class


def _new_dill_pickler(dill, out, buffers: list, view_root_ids: set[int]):
    """dill's pickler as checkpoints use it: notebook code by value, the notebook's globals by reference."""
    pickler = _dill_pickler(dill)(out, protocol=PROTOCOL, buffer_callback=buffers.append, byref=False, recurse=False)
    # dill remembers the __main__ of the moment it was imported; the kernel's is the one that counts.
    pickler._main = sys.modules["__main__"]
    pickler.prepare(view_root_ids)
    return pickler


_unpickler_class = None


def _new_unpickler(dill, stream, buffers, notebook_code: dict | None = None):
    """dill's unpickler, answering ``__main__.<qualname>`` from ``notebook_code`` (a two-part blob's)."""
    global _unpickler_class
    if _unpickler_class is None:

        class _Unpickler(dill.Unpickler):
            notebook_code: dict = {}

            def find_class(self, module, name):
                if module == "__main__" and name in self.notebook_code:
                    return self.notebook_code[name]
                return super().find_class(module, name)

        _unpickler_class = _Unpickler
    unpickler = _unpickler_class(stream, buffers=buffers)
    unpickler._main = sys.modules["__main__"]
    if notebook_code is not None:
        unpickler.notebook_code = notebook_code
    return unpickler


@dataclass
class Pickled:
    """One dump: the pickle bytes, its out-of-band buffers and the objects its memo holds."""

    #: How the blob loads: ``"pickle"``, or ``"dill"`` (dill throughout, or notebook code first:
    #: see ``notebook_code``).
    serializer: str
    data: bytes
    buffers: list = field(default_factory=list)
    #: The memo's objects; kept alive so their ids stay unique until grouping is done.
    memo_objects: list = field(default_factory=list)
    #: The notebook functions and classes dill saved by value ahead of a C pickle of the rest
    #: (qualified name → object, see the module doc); empty when one pickler did it all.
    notebook_code: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Size of the pickle plus its buffers."""
        return len(self.data) + sum(buffer.raw().nbytes for buffer in self.buffers)

    @property
    def all_dill(self) -> bool:
        """Whether dill's pure-Python pickler saved the whole value (a group holding it uses dill too)."""
        return self.serializer == "dill" and not self.notebook_code


def unserializable_reason(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:
        text = ""
    text = text.replace("\n", " ")
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _notebook_code(objects: list, kinds: set) -> dict:
    """The notebook functions and classes among a C pickle's memo ``objects``, by qualified name.

    pickle saved each as ``__main__.<qualname>``, having checked that the name finds it.

    :param kinds: the types of ``objects`` (most memos hold no code at all).
    """
    code_kinds = {kind for kind in kinds if kind is types.FunctionType or issubclass(kind, type)}
    if not code_kinds:
        return {}
    candidates = compress(objects, map(code_kinds.__contains__, map(type, objects)))
    return {obj.__qualname__: obj for obj in candidates if getattr(obj, "__module__", None) == "__main__"}


#: Types pickle saves by value, never by name.
_BY_VALUE_TYPES = frozenset(
    {list, dict, set, frozenset, tuple, str, bytes, bytearray, int, float, complex, bool, type(None), pickle.PickleBuffer}
)


def _reduced_by_value(kind: type) -> bool:
    """Whether pickle saves instances of ``kind`` by value (only an own reduction can give a name)."""
    if kind in _BY_VALUE_TYPES:
        return True
    numpy = sys.modules.get("numpy")
    if numpy is not None and kind is numpy.ndarray:
        return True
    try:
        return (
            getattr(kind, "__reduce_ex__", None) is object.__reduce_ex__
            and getattr(kind, "__reduce__", None) is object.__reduce__
            and kind not in copyreg.dispatch_table
        )
    except Exception:  # noqa: BLE001 - a metaclass that misbehaves: a suspect (the scan decides)
        return False


def _may_name_main(objects: list, kinds: set) -> bool:
    """Whether a C pickle may look up in ``__main__`` by name more than its notebook code.

    Besides classes and functions, pickle saves by name what an own reduction names (a
    ``functools.lru_cache`` function does), looked up in the object's ``__module__`` or, lacking
    one, wherever a module binds it. Suspects are such objects whose module is ``__main__``, or
    that lack one and are bound there; only then does ``main_reference`` read the pickle (about
    a second per 100,000 instances). One pass over the memo at C speed otherwise.

    :param kinds: the types of ``objects``.
    """
    suspect_kinds = {
        kind for kind in kinds if not (kind is types.FunctionType or issubclass(kind, type) or _reduced_by_value(kind))
    }
    if not suspect_kinds:
        return False
    main_ids = None
    for obj in compress(objects, map(suspect_kinds.__contains__, map(type, objects))):
        try:
            module = getattr(obj, "__module__", None)
        except Exception:  # noqa: BLE001 - an odd ``__getattr__``: the scan decides
            return True
        if module == "__main__":
            return True
        if module is None:
            if main_ids is None:
                main_ids = set(map(id, vars(sys.modules["__main__"]).values()))
            if id(obj) in main_ids:
                return True
    return False


#: Reached from both the notebook code and the rest of a value, these need not come back as one
#: object: immutable, or saved by name by both picklers.
_NEED_NOT_SHARE = frozenset(
    {str, bytes, int, float, complex, bool, type(None), types.CodeType, types.BuiltinFunctionType, types.ModuleType}
)


def _shares_state(code_objects: list, value_objects: list) -> bool:
    """Whether dill's pickle of the notebook code and the C pickle of the value reach one object that must stay one.

    Classes and functions never count: those of the notebook that the C pickle reached are the
    code itself (looked up by name, so one object anyway), and library ones both save by name.

    :param code_objects: what dill memoized, saving the code (a few hundred objects).
    :param value_objects: what the C pickler memoized (maybe hundreds of thousands: looked up at C speed).
    """
    must_share = {
        id(obj)
        for obj in code_objects
        if type(obj) not in _NEED_NOT_SHARE and type(obj) is not types.FunctionType and not isinstance(obj, type)
    }
    return bool(must_share) and any(map(must_share.__contains__, map(id, value_objects)))


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_GET_OPS = frozenset({"BINGET", "LONG_BINGET", "GET"})
_PUT_OPS = frozenset({"BINPUT", "LONG_BINPUT", "PUT"})
_NEUTRAL_OPS = frozenset({"FRAME", "PROTO", "MEMOIZE", "STOP"}) | _PUT_OPS


def main_reference(data, known=frozenset()) -> str | None:
    """The first ``__main__.<name>`` the pickle looks up by name, if any.

    Such a pickle only loads where ``__main__`` already defines that name, which a fresh kernel
    does not (dill falls back to this for classes it cannot save by value, e.g. notebook enums).
    ``__main__.__dict__`` (dill's reference to the notebook's globals) is fine. The scan is
    pure Python, so it runs only when the bytes mention ``__main__`` at all.

    :param known: names that are fine too (the notebook code a two-part blob carries).
    """
    if b"__main__" not in data:
        return None
    recent: list = []
    memo: dict = {}
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name in _STRING_OPS:
            recent.append(arg)
        elif name in _GET_OPS:
            recent.append(memo.get(arg))
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in _PUT_OPS:
            memo[arg] = recent[-1] if recent else None
        elif name == "GLOBAL":
            module, _, qualname = str(arg).partition(" ")
            if module == "__main__" and qualname != "__dict__" and qualname not in known:
                return qualname
            recent.append(None)
        elif name == "STACK_GLOBAL":
            module, qualname = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            if module == "__main__" and qualname != "__dict__" and qualname not in known:
                return str(qualname)
            recent.append(None)
        elif name not in _NEUTRAL_OPS:
            recent.append(None)
        if len(recent) > 64:
            del recent[:-8]
    return None


def _memoizes(data) -> int:
    """How many objects loading the pickle puts in the unpickler's memo."""
    return sum(1 for opcode, _, _ in pickletools.genops(data) if opcode.name == "MEMOIZE" or opcode.name in _PUT_OPS)


def _holds_open_file(memo_objects, handled: set[int]) -> object | None:
    # A file object dill saved its own way (it would reopen it in its saved mode at restore).
    for obj in memo_objects:
        if isinstance(obj, io.IOBase) and not isinstance(obj, (io.BytesIO, io.StringIO)) and id(obj) not in handled:
            return obj
    return None


def _dill_refusal(data, memo_objects: list, file_ids: set[int]) -> str | None:
    """Why a dill pickle must not be used: it looks notebook code up by name, or would reopen a file."""
    by_name = main_reference(data)
    if by_name is not None:
        return f"dill can only save __main__.{by_name} by name, which a new kernel does not have"
    handle = _holds_open_file(memo_objects, file_ids)
    if handle is not None:
        return (
            f"holds an open file ({type(handle).__name__} {getattr(handle, 'name', '')!r}); "
            "restoring it could truncate the file"
        )
    return None


def _memo_objects(memo: dict, first_index: int = 0) -> list:
    """The objects of a pickler's memo (``id`` → (index, object)) from ``first_index`` on."""
    if not first_index:
        return list(map(itemgetter(1), memo.values()))
    return [obj for index, obj in memo.values() if index >= first_index]


def _c_dump(value: object, view_root_ids: set[int], memo: dict | None = None) -> tuple[bytes, list, list]:
    """The C pickle of ``value``: its bytes, out-of-band buffers and the objects its pickler memoized.

    The memo's copy (a tuple per object) is dropped before the collector runs again: it would
    otherwise walk them all once (a tenth of a second for 200,000), for nothing.

    :param memo: what the pickler's memo starts as (``id`` → (index, object), indices 0 to n-1);
        its objects are not among those returned.
    :raises NotSerializable: pickle fails.
    """
    out = io.BytesIO()
    buffers: list = []
    pickler = _Pickler(out, protocol=PROTOCOL, buffer_callback=buffers.append)
    pickler.prepare(view_root_ids)
    first_index = 0
    if memo is not None:
        pickler.memo = memo
        first_index = len(memo)
    with _gc_paused():
        try:
            pickler.dump(value)
        except Exception as error:  # noqa: BLE001 - any failure means "try dill"
            raise NotSerializable(unserializable_reason(error), _memo_objects(pickler.memo.copy(), first_index)) from error
        return out.getvalue(), buffers, _memo_objects(pickler.memo.copy(), first_index)


_CODE_HEADER = "jupyterhub-resume:notebook-code"


def _dump_code(dill, code: dict, shares_memo: bool, view_root_ids: set[int], value_objects: list) -> tuple[bytes, list, dict, list]:
    """dill's pickle of a two-part blob's first part: the notebook code by value.

    :param value_objects: the value's memo objects (reported with a refusal).
    :returns: bytes, out-of-band buffers, dill's memo (the header's entries too: a memo the C
        pickler starts from must number objects as the unpickler will), and the memo's objects
        less the header's own tuple and dict.
    :raises CodeRefused: dill can only save some of the code by name, or it holds an open file.
    """
    out = io.BytesIO()
    buffers: list = []
    pickler = _new_dill_pickler(dill, out, buffers, view_root_ids)
    header = (_CODE_HEADER, code, shares_memo)
    try:
        with _gc_paused(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in dump_with_dill
            pickler.dump(header)
    except Exception as error:  # noqa: BLE001 - dill would fail on the whole value the same way
        raise CodeRefused(unserializable_reason(error), value_objects + _memo_objects(pickler.memo)) from error
    data = out.getvalue()
    ours = {id(header), id(code)}
    code_objects = [obj for ident, (_, obj) in pickler.memo.items() if ident not in ours]
    refusal = _dill_refusal(data, code_objects, pickler.file_ids)
    if refusal is not None:
        raise CodeRefused(refusal, value_objects + code_objects)
    return data, buffers, pickler.memo, code_objects


def dump_with_pickle(value: object, view_root_ids: set[int]) -> Pickled:
    """Pickles with the C pickler (protocol 5, out-of-band buffers), and notebook code with dill.

    A value that reaches notebook functions or classes gives a two-part ``"dill"`` blob whose
    ``notebook_code`` names them (see the module doc).

    :raises CodeRefused: dill can only save some of that code by name, or it holds an open file.
    :raises NotSerializable: pickle fails, the value refers to something else in ``__main__`` by
        name, or dill, which its notebook code needs, is missing.
    """
    data, buffers, objects = _c_dump(value, view_root_ids)
    kinds = set(map(type, objects))
    code = _notebook_code(objects, kinds)
    if not code:
        if main_reference(data) is not None:
            raise NotSerializable(NOTEBOOK_CODE, objects)
        return Pickled("pickle", data, buffers, objects)
    if _may_name_main(objects, kinds) and main_reference(data, code.keys()) is not None:
        raise NotSerializable(NOTEBOOK_CODE, objects)
    dill = _dill()
    if dill is None:
        raise NotSerializable(NOTEBOOK_CODE, objects)
    code_data, code_buffers, _, code_objects = _dump_code(dill, code, False, view_root_ids, objects)
    if not _shares_state(code_objects, objects):
        return Pickled("dill", code_data + data, code_buffers + buffers, objects + code_objects, code)
    # Something reached from the code is reached from the value too: pickle the value again,
    # the C pickler's memo starting as dill's, so that it saves what dill saved as a reference.
    del data, buffers
    code_data, code_buffers, code_memo, code_objects = _dump_code(dill, code, True, view_root_ids, objects)
    if sorted(index for index, _ in code_memo.values()) != list(range(len(code_memo))) or _memoizes(code_data) != len(code_memo):
        # The unpickler would number dill's objects otherwise than dill did: dill saves it all.
        raise NotSerializable("dill's memo cannot be shared with pickle", objects)
    data, buffers, value_objects = _c_dump(value, view_root_ids, dict(code_memo))
    return Pickled("dill", code_data + data, code_buffers + buffers, code_objects + value_objects, code)


def with_code_bound(pickled: Pickled, names: dict) -> Pickled | None:
    """``pickled`` loading with more names, bound to notebook code it saves by value; ``None`` if it cannot.

    What spares pickling a group again when it is one value plus the notebook classes and
    functions that value's pickle already carries (``Point`` with ``points``): the two-part
    blob gains a third pickle, ``{name: qualname}``, and the loaded dict gains those names, bound
    to the very objects the value's instances use.

    :param pickled: a variable's dump (a one-entry dict).
    :param names: more variables of its group and their values.
    """
    if not pickled.notebook_code:
        return None
    bound = {}
    for name, value in names.items():
        qualname = getattr(value, "__qualname__", None)
        if not is_notebook_code(value) or pickled.notebook_code.get(qualname) is not value:
            return None
        bound[name] = qualname
    trailer = pickle.dumps(bound, protocol=PROTOCOL)
    return replace(pickled, data=pickled.data + trailer)


def dump_with_dill(value: object, view_root_ids: set[int], max_bytes: int | None = None) -> Pickled:
    """Pickles with dill (protocol 5, out-of-band buffers, notebook functions by value).

    Open files are refused: dill would reopen them in their saved mode at restore, and a file
    opened for writing comes back truncated (DESIGN invariant 7).

    :param max_bytes: a budget for the pickle (out-of-band buffers aside), for callers that only
        ask whether dill can save a value (``fingerprints``); ``None``: no limit.
    :raises NotSerializable: dill is missing or fails, or the value holds an open file.
    :raises OverBudget: the pickle outgrew ``max_bytes`` (nothing is known then).
    """
    dill = _dill()
    if dill is None:
        raise NotSerializable("dill is not installed in this kernel")
    out = io.BytesIO() if max_bytes is None else CappedBuffer(max_bytes)
    buffers: list = []
    pickler = _new_dill_pickler(dill, out, buffers, view_root_ids)
    try:
        with _gc_paused(), warnings.catch_warnings():
            # dill warns (on the user's stderr) before falling back to by-name references;
            # _dill_refusal() below turns that fallback into a clean "cannot be serialized".
            warnings.simplefilter("ignore")
            pickler.dump(value)
    except OverBudget:
        raise
    except Exception as error:  # noqa: BLE001 - any failure means "cannot be serialized"
        raise NotSerializable(unserializable_reason(error), _memo_objects(pickler.memo)) from error
    memo_objects = _memo_objects(pickler.memo)
    data = out.getvalue()
    refusal = _dill_refusal(data, memo_objects, pickler.file_ids)
    if refusal is not None:
        raise NotSerializable(refusal, memo_objects)
    return Pickled("dill", data, buffers, memo_objects)


def dump(value: object, view_root_ids: set[int], prefer: str = "pickle") -> Pickled:
    """Pickles with pickle (notebook code by dill), falling back to dill for the whole value.

    :param prefer: ``"dill"`` to skip pickle (a group that has a member only dill can do).
    :raises NotSerializable: with the reason of the last serializer tried.
    """
    if prefer == "pickle":
        try:
            return dump_with_pickle(value, view_root_ids)
        except CodeRefused:
            raise  # dill itself refused part of the value
        except NotSerializable as pickle_error:
            try:
                return dump_with_dill(value, view_root_ids)
            except NotSerializable as dill_error:
                if _dill() is None:
                    raise NotSerializable(without_dill(str(pickle_error)), pickle_error.memo_objects) from dill_error
                if not dill_error.memo_objects:
                    dill_error.memo_objects = pickle_error.memo_objects
                raise
    return dump_with_dill(value, view_root_ids)


def load(serializer: str, data, buffers: list) -> object:
    """Unpickles one group's pickle with its buffers (numpy arrays reuse the buffers' memory).

    A ``"dill"`` blob that starts with notebook code (see the module doc) is read in its parts.

    :raises Exception: whatever the unpickler raises (the caller fails the group).
    """
    if serializer == "pickle":
        with _gc_paused():
            return pickle.loads(data, buffers=buffers)
    dill = _dill()
    if dill is None:
        raise ModuleNotFoundError("this group was saved with dill, which is not installed in this kernel")
    stream = io.BytesIO(data)
    parts = iter(buffers)  # each part takes the buffers it saved, in order
    with _gc_paused():
        unpickler = _new_unpickler(dill, stream, parts)
        first = unpickler.load()
        if not (type(first) is tuple and len(first) == 3 and first[0] == _CODE_HEADER):
            return first
        _, code, shares_memo = first
        if shares_memo:
            unpickler.notebook_code = code  # the same unpickler: its memo numbers dill's objects
        else:
            unpickler = _new_unpickler(dill, stream, parts, code)
        values = unpickler.load()
        if stream.tell() < len(data):
            bound = pickle.load(stream)
            values.update((name, code[qualname]) for name, qualname in bound.items())
        return values
