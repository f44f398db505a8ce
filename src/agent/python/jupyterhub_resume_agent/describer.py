"""The ``describe`` command: a type-aware fingerprint of every user variable, plus aliases.

``verify`` runs a notebook, checkpoints, restores into a fresh kernel and compares the two
descriptions. Fingerprints must therefore be equal for equal state in two different
processes: string hashing is randomised per process (set order differs), and code objects
carry per-kernel file names, so both are normalised before hashing. Nor may pickling change
them: copyreg caches ``__slotnames__`` on a class the first time one of its instances is
pickled, so a notebook class is given that cache before its by-value bytes are hashed.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import pickle
import struct
import sys
import types
import warnings

from .file_handles import describe_file_handle
from .user_namespace import type_name, user_variables

_CELL_FILENAME = "<cell>"


def _sha(*pieces) -> str:
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece if isinstance(piece, (bytes, bytearray, memoryview)) else str(piece).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _save_sorted_set(pickler, obj) -> None:
    # Saves a set's elements in the order of their own canonical bytes, so the pickle does not
    # depend on the process's hash seed.
    items = [item for _, item in sorted(((_canonical_bytes(item), item) for item in obj), key=lambda pair: pair[0])]
    pickler.save_reduce(frozenset if type(obj) is frozenset else set, (items,), obj=obj)


# Immutable atoms are written out every time instead of memoized: whether two equal strings or
# tuples are one object or two (compiler constant sharing, unpickling) must not change the bytes.
def _save_str(pickler, obj) -> None:
    encoded = obj.encode("utf-8", "surrogatepass")
    pickler.write(pickle.BINUNICODE8 + struct.pack("<Q", len(encoded)) + encoded)


def _save_bytes(pickler, obj) -> None:
    pickler.write(pickle.BINBYTES8 + struct.pack("<Q", len(obj)) + obj)


def _save_tuple(pickler, obj) -> None:
    pickler.write(pickle.MARK)
    for item in obj:
        pickler.save(item)
    pickler.write(pickle.TUPLE)


_CANONICAL_DISPATCH = {set: _save_sorted_set, frozenset: _save_sorted_set, str: _save_str, bytes: _save_bytes, tuple: _save_tuple}


class _CanonicalPickler(pickle._Pickler):  # noqa: SLF001 - the pure-Python pickler lets us override types
    """pickle in a canonical form: sets sorted, immutable atoms never memoized (slower)."""

    dispatch = pickle._Pickler.dispatch.copy()  # noqa: SLF001
    dispatch.update(_CANONICAL_DISPATCH)


def _canonical_bytes(value) -> bytes:
    out = io.BytesIO()
    try:
        _CanonicalPickler(out, protocol=5).dump(value)
    except Exception:  # noqa: BLE001 - unpicklable element: fall back to its repr for ordering
        return repr(value).encode("utf-8", "replace")
    return out.getvalue()


def _settle_slotnames(cls: type) -> None:
    """Caches ``__slotnames__`` on ``cls`` now, as pickling any of its instances would.

    A class's by-value bytes hold its ``__dict__``: with the cache added by the first pickle of
    an instance (a checkpoint's, a cell record's), they would differ before and after it.
    """
    try:
        copyreg._slotnames(cls)  # noqa: SLF001 - the very function pickle calls
    except Exception:  # noqa: BLE001 - odd ``__slots__``: pickling an instance would fail the same way
        pass


_canonical_dill_class = None


def _canonical_dill():
    """A dill pickler that normalises code file names and set order (built once, dill lazily)."""
    global _canonical_dill_class
    if _canonical_dill_class is None:
        import dill  # noqa: PLC0415 - optional dependency, imported when first needed

        save_code = dill.Pickler.dispatch[types.CodeType]

        def save_normalised_code(pickler, obj):
            if obj.co_filename != _CELL_FILENAME:
                obj = obj.replace(co_filename=_CELL_FILENAME)
            save_code(pickler, obj)

        class _CanonicalDillPickler(dill.Pickler):
            # dill's dispatch is a dict subclass that also answers for metaclasses: keep its type.
            dispatch = type(dill.Pickler.dispatch)(dill.Pickler.dispatch.copy())
            dispatch[types.CodeType] = save_normalised_code
            dispatch.update(_CANONICAL_DISPATCH)

            def save(self, obj, save_persistent_id=True):
                # Notebook classes are saved by value, wherever they are met (a class attribute,
                # a closure): each first gets the cache an instance's pickle would give it.
                if isinstance(obj, type) and getattr(obj, "__module__", None) == "__main__":
                    _settle_slotnames(obj)
                super().save(obj, save_persistent_id)

        _canonical_dill_class = _CanonicalDillPickler
    return _canonical_dill_class


def _dill_digest(value) -> str | None:
    try:
        pickler_class = _canonical_dill()
    except ImportError:
        return None
    out = io.BytesIO()
    try:
        pickler = pickler_class(out, protocol=5, byref=False, recurse=False)
        pickler._main = sys.modules["__main__"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dill's fallback warnings would land in the notebook
            pickler.dump(value)
    except Exception:  # noqa: BLE001 - not fingerprintable
        return None
    return _sha("dill", out.getvalue())


def _pickle_digest(value) -> str | None:
    out = io.BytesIO()
    try:
        pickler = pickle.Pickler(out, protocol=5)
        pickler.dump(value)
        if any(type(obj) in (set, frozenset) for _, obj in pickler.memo.copy().values()):
            out = io.BytesIO()
            _CanonicalPickler(out, protocol=5).dump(value)
    except Exception:  # noqa: BLE001 - try dill next
        return None
    return _sha("pickle", out.getvalue())


def _numpy_digest(array) -> str | None:
    if array.dtype.hasobject:
        return None  # the bytes are pointers; pickle compares the objects instead
    contiguous = array if array.flags.c_contiguous else array.copy(order="C")
    try:
        raw = memoryview(contiguous.reshape(-1).view("u1"))
    except (TypeError, ValueError):
        return None
    return _sha("numpy", array.dtype.str, array.dtype.descr, array.shape, raw)


def _pandas_digest(value, pandas) -> str | None:
    try:
        hashes = pandas.util.hash_pandas_object(value, index=True).to_numpy()
    except Exception:  # noqa: BLE001 - unhashable cells (lists in an object column): use pickle
        return None
    if isinstance(value, pandas.DataFrame):
        columns = repr(list(value.columns))
        dtypes = repr([str(dtype) for dtype in value.dtypes])
    else:
        columns = ""
        dtypes = str(value.dtype)
    return _sha("pandas", type(value).__name__, value.shape, columns, dtypes, memoryview(hashes.view("u1")))


def fingerprint(value) -> str | None:
    """A hex digest that is equal for equal values in two kernels, or ``None`` if there is none.

    numpy arrays: dtype, shape and the bytes; pandas DataFrame/Series: dtypes, columns and
    ``hash_pandas_object`` of values and index (two ``.equals`` frames share it); modules: their
    name; file handles: kind, name, mode, closed and position; functions and classes defined in the notebook: canonical dill bytes (file names
    normalised); anything else: canonical pickle bytes, else canonical dill bytes.

    :param value: any object.
    """
    numpy = sys.modules.get("numpy")
    if numpy is not None and type(value) is numpy.ndarray:
        digest = _numpy_digest(value)
        if digest is not None:
            return digest
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series)):
        digest = _pandas_digest(value, pandas)
        if digest is not None:
            return digest
    if isinstance(value, types.ModuleType):
        return _sha("module", value.__name__)
    handle = describe_file_handle(value)
    if handle is not None:
        return _sha("file", *handle)
    if isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == "__main__":
        return _dill_digest(value)
    return _pickle_digest(value) or _dill_digest(value)


def describe(shell) -> dict:
    """The Description of the user's variables: type and fingerprint of each, and alias groups.

    :param shell: the IPython shell.
    """
    variables = user_variables(shell)
    described = []
    by_identity: dict[int, list[str]] = {}
    for name, value in variables.items():
        try:
            digest = fingerprint(value)
        except Exception:  # noqa: BLE001 - one odd value must not fail the description
            digest = None
        described.append({"name": name, "type": type_name(value), "fingerprint": digest})
        by_identity.setdefault(id(value), []).append(name)
    aliases = [names for names in by_identity.values() if len(names) > 1]
    return {"variables": described, "aliases": aliases}
