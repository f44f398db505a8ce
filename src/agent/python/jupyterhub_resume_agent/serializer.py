"""Pickling a set of variables into (pickle bytes, out-of-band buffers), and back.

Protocol 5 with a ``buffer_callback``: numpy and pandas data leave the pickle as
``PickleBuffer``s pointing at the arrays' own memory, so nothing large is copied. dill is the
fallback for what pickle cannot do by value (lambdas, functions and classes defined in the
notebook). After each dump the pickler's memo is kept: it says which objects the variable
reaches (see ``object_links``).
"""

from __future__ import annotations

import copyreg
import io
import pickle
import pickletools
import sys
import types
import warnings
from dataclasses import dataclass, field

from .array_views import reduce_view
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


_FILE_TYPES = (io.FileIO, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)


class ReducerMixin:
    """What pickle and dill get wrong by default, fixed per pickler.

    numpy views of user arrays stay views (``array_views``); file handles are saved as a
    description and never reopened for writing (``file_handles``). Call ``prepare`` before
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
        """dill's ``reducer_override``: a recipe for views and files, ``NotImplemented`` otherwise."""
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


def _dill_pickler(dill):
    global _dill_pickler_class
    if _dill_pickler_class is None:

        class _DillPickler(ReducerMixin, dill.Pickler):
            """dill's pickler with the agent's reducers."""

            reducer_override = ReducerMixin.reduce_special

        _dill_pickler_class = _DillPickler
    return _dill_pickler_class


@dataclass
class Pickled:
    """One dump: the pickle bytes, its out-of-band buffers and the objects its memo holds."""

    serializer: str
    data: bytes
    buffers: list = field(default_factory=list)
    #: The memo's objects; kept alive so their ids stay unique until grouping is done.
    memo_objects: list = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """Size of the pickle plus its buffers."""
        return len(self.data) + sum(buffer.raw().nbytes for buffer in self.buffers)


def unserializable_reason(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:
        text = ""
    text = text.replace("\n", " ")
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _refers_to_main(memo_objects) -> bool:
    # pickle saves functions and classes by name: ``__main__.f`` would be looked up in the new
    # kernel before anything defines it. dill pickles those by value instead.
    for obj in memo_objects:
        if (isinstance(obj, type) or type(obj) is types.FunctionType) and getattr(obj, "__module__", None) == "__main__":
            return True
    return False


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_GET_OPS = frozenset({"BINGET", "LONG_BINGET", "GET"})
_PUT_OPS = frozenset({"BINPUT", "LONG_BINPUT", "PUT"})
_NEUTRAL_OPS = frozenset({"FRAME", "PROTO", "MEMOIZE", "STOP"}) | _PUT_OPS


def main_reference(data) -> str | None:
    """The first ``__main__.<name>`` the pickle looks up by name, if any.

    Such a pickle only loads where ``__main__`` already defines that name, which a fresh kernel
    does not (dill falls back to this for classes it cannot save by value, e.g. notebook enums).
    ``__main__.__dict__`` (dill's reference to the notebook's globals) is fine. The scan is
    pure Python, so it runs only when the bytes mention ``__main__`` at all.
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
            if module == "__main__" and qualname != "__dict__":
                return qualname
            recent.append(None)
        elif name == "STACK_GLOBAL":
            module, qualname = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            if module == "__main__" and qualname != "__dict__":
                return str(qualname)
            recent.append(None)
        elif name not in _NEUTRAL_OPS:
            recent.append(None)
        if len(recent) > 64:
            del recent[:-8]
    return None


def _holds_open_file(memo_objects, handled: set[int]) -> object | None:
    # A file object dill saved its own way (it would reopen it in its saved mode at restore).
    for obj in memo_objects:
        if isinstance(obj, io.IOBase) and not isinstance(obj, (io.BytesIO, io.StringIO)) and id(obj) not in handled:
            return obj
    return None


def dump_with_pickle(value: object, view_root_ids: set[int]) -> Pickled:
    """Pickles with the C pickler (protocol 5, out-of-band buffers).

    :raises NotSerializable: pickle fails, or the value refers to a ``__main__`` function or class.
    """
    out = io.BytesIO()
    buffers: list = []
    pickler = _Pickler(out, protocol=PROTOCOL, buffer_callback=buffers.append)
    pickler.prepare(view_root_ids)
    try:
        pickler.dump(value)
    except Exception as error:  # noqa: BLE001 - any failure means "try dill"
        raise NotSerializable(unserializable_reason(error), [obj for _, obj in pickler.memo.copy().values()]) from error
    memo_objects = [obj for _, obj in pickler.memo.copy().values()]
    data = out.getvalue()
    if _refers_to_main(memo_objects) or main_reference(data) is not None:
        raise NotSerializable("refers to a function or class defined in the notebook", memo_objects)
    return Pickled("pickle", data, buffers, memo_objects)


def dump_with_dill(value: object, view_root_ids: set[int]) -> Pickled:
    """Pickles with dill (protocol 5, out-of-band buffers, notebook functions by value).

    Open files are refused: dill would reopen them in their saved mode at restore, and a file
    opened for writing comes back truncated (DESIGN invariant 7).

    :raises NotSerializable: dill is missing or fails, or the value holds an open file.
    """
    dill = _dill()
    if dill is None:
        raise NotSerializable("dill is not installed in this kernel")
    out = io.BytesIO()
    buffers: list = []
    pickler = _dill_pickler(dill)(out, protocol=PROTOCOL, buffer_callback=buffers.append, byref=False, recurse=False)
    # dill remembers the __main__ of the moment it was imported; the kernel's is the one that counts.
    pickler._main = sys.modules["__main__"]
    pickler.prepare(view_root_ids)
    try:
        with warnings.catch_warnings():
            # dill warns (on the user's stderr) before falling back to by-name references;
            # main_reference() below turns that fallback into a clean "cannot be serialized".
            warnings.simplefilter("ignore")
            pickler.dump(value)
    except Exception as error:  # noqa: BLE001 - any failure means "cannot be serialized"
        raise NotSerializable(unserializable_reason(error), [obj for _, obj in pickler.memo.values()]) from error
    memo_objects = [obj for _, obj in pickler.memo.values()]
    data = out.getvalue()
    by_name = main_reference(data)
    if by_name is not None:
        raise NotSerializable(
            f"dill can only save __main__.{by_name} by name, which a new kernel does not have", memo_objects
        )
    handle = _holds_open_file(memo_objects, pickler.file_ids)
    if handle is not None:
        raise NotSerializable(
            f"holds an open file ({type(handle).__name__} {getattr(handle, 'name', '')!r}); "
            "restoring it could truncate the file",
            memo_objects,
        )
    return Pickled("dill", data, buffers, memo_objects)


def dump(value: object, view_root_ids: set[int], prefer: str = "pickle") -> Pickled:
    """Pickles with pickle, falling back to dill.

    :param prefer: ``"dill"`` to skip pickle (a group that has a member only dill can do).
    :raises NotSerializable: with the reason of the last serializer tried.
    """
    if prefer == "pickle":
        try:
            return dump_with_pickle(value, view_root_ids)
        except NotSerializable as pickle_error:
            try:
                return dump_with_dill(value, view_root_ids)
            except NotSerializable as dill_error:
                if _dill() is None:
                    raise NotSerializable(
                        f"{pickle_error} (and dill is not installed)", pickle_error.memo_objects
                    ) from dill_error
                if not dill_error.memo_objects:
                    dill_error.memo_objects = pickle_error.memo_objects
                raise
    return dump_with_dill(value, view_root_ids)


def load(serializer: str, data, buffers: list) -> object:
    """Unpickles one group's pickle with its buffers (numpy arrays reuse the buffers' memory).

    :raises Exception: whatever the unpickler raises (the caller fails the group).
    """
    if serializer == "pickle":
        return pickle.loads(data, buffers=buffers)
    dill = _dill()
    if dill is None:
        raise ModuleNotFoundError("this group was saved with dill, which is not installed in this kernel")
    unpickler = dill.Unpickler(io.BytesIO(data), buffers=buffers)
    unpickler._main = sys.modules["__main__"]
    return unpickler.load()
