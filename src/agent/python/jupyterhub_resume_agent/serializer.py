"""Pickling a set of variables into (pickle bytes, out-of-band buffers), and back.

Protocol 5 with a ``buffer_callback``: numpy and pandas data leave the pickle as
``PickleBuffer``s pointing at the arrays' own memory, so nothing large is copied. dill is the
fallback for what pickle cannot do by value (lambdas, functions and classes defined in the
notebook). After each dump the pickler's memo is kept: it says which objects the variable
reaches (see ``object_links``).
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from dataclasses import dataclass, field

from .array_views import ViewReducerMixin

PROTOCOL = 5


class NotSerializable(Exception):
    """A value neither pickle nor dill can (or may) serialize; the message is the reason.

    ``memo_objects`` holds what the pickler memoized before it gave up: enough to link the value
    to the variables it shares objects with.
    """

    def __init__(self, reason: str, memo_objects: list | None = None) -> None:
        super().__init__(reason)
        self.memo_objects = memo_objects or []


class _ViewPickler(ViewReducerMixin, pickle.Pickler):
    """The C pickler plus numpy-view preservation."""


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

        class _DillViewPickler(ViewReducerMixin, dill.Pickler):
            """dill's pickler plus numpy-view preservation."""

        _dill_pickler_class = _DillViewPickler
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


def _reason(error: BaseException) -> str:
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


def _holds_open_file(memo_objects) -> object | None:
    for obj in memo_objects:
        if isinstance(obj, io.IOBase):
            return obj
    return None


def dump_with_pickle(value: object, view_root_ids: set[int]) -> Pickled:
    """Pickles with the C pickler (protocol 5, out-of-band buffers).

    :raises NotSerializable: pickle fails, or the value refers to a ``__main__`` function or class.
    """
    out = io.BytesIO()
    buffers: list = []
    pickler_class = _ViewPickler if view_root_ids else pickle.Pickler
    pickler = pickler_class(out, protocol=PROTOCOL, buffer_callback=buffers.append)
    if view_root_ids:
        pickler.view_root_ids = view_root_ids
    try:
        pickler.dump(value)
    except Exception as error:  # noqa: BLE001 - any failure means "try dill"
        raise NotSerializable(_reason(error), [obj for _, obj in pickler.memo.copy().values()]) from error
    memo_objects = [obj for _, obj in pickler.memo.copy().values()]
    if _refers_to_main(memo_objects):
        raise NotSerializable("refers to a function or class defined in the notebook", memo_objects)
    return Pickled("pickle", out.getvalue(), buffers, memo_objects)


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
    pickler.view_root_ids = view_root_ids
    try:
        pickler.dump(value)
    except Exception as error:  # noqa: BLE001 - any failure means "cannot be serialized"
        raise NotSerializable(_reason(error), [obj for _, obj in pickler.memo.values()]) from error
    memo_objects = [obj for _, obj in pickler.memo.values()]
    handle = _holds_open_file(memo_objects)
    if handle is not None:
        raise NotSerializable(
            f"holds an open file ({type(handle).__name__} {getattr(handle, 'name', '')!r}); "
            "restoring it could truncate the file",
            memo_objects,
        )
    return Pickled("dill", out.getvalue(), buffers, memo_objects)


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
