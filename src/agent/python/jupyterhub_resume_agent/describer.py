"""The ``describe`` command: a type-aware fingerprint of every user variable, plus aliases.

``verify`` runs a notebook, checkpoints, restores into a fresh kernel and compares the two
descriptions. Fingerprints must therefore be equal for equal state in two different
processes: string hashing is randomised per process (set order differs), and code objects
carry per-kernel file names, so both are normalised before hashing.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import types

from .user_namespace import type_name, user_variables

_CELL_FILENAME = "<cell>"


def _sha(*pieces) -> str:
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece if isinstance(piece, (bytes, bytearray, memoryview)) else str(piece).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _sorted_set_saver(base_save):
    # Saves a set's elements in the order of their own canonical bytes, so the pickle does not
    # depend on the process's hash seed.
    def save(pickler, obj):
        keyed = sorted(((_canonical_bytes(item), index, item) for index, item in enumerate(obj)), key=lambda k: (k[0], k[1]))
        items = [item for _, _, item in keyed]
        if type(obj) is frozenset:
            pickler.save_reduce(frozenset, (items,), obj=obj)
        else:
            pickler.save_reduce(set, (items,), obj=obj)

    return save


class _CanonicalPickler(pickle._Pickler):  # noqa: SLF001 - the pure-Python pickler lets us override sets
    """pickle with set elements in a canonical order (slower; used only when a set is reached)."""

    dispatch = pickle._Pickler.dispatch.copy()  # noqa: SLF001
    dispatch[set] = _sorted_set_saver(None)
    dispatch[frozenset] = _sorted_set_saver(None)


def _canonical_bytes(value) -> bytes:
    out = io.BytesIO()
    try:
        _CanonicalPickler(out, protocol=5).dump(value)
    except Exception:  # noqa: BLE001 - unpicklable element: fall back to its repr for ordering
        return repr(value).encode("utf-8", "replace")
    return out.getvalue()


_canonical_dill_class = None


def _canonical_dill():
    """A dill pickler that normalises code file names and set order (built once, dill lazily)."""
    global _canonical_dill_class
    if _canonical_dill_class is None:
        import dill  # noqa: PLC0415 - optional dependency, imported when first needed
        from dill._dill import MetaCatchingDict  # noqa: PLC0415

        save_code = dill.Pickler.dispatch[types.CodeType]

        def save_normalised_code(pickler, obj):
            if obj.co_filename != _CELL_FILENAME:
                obj = obj.replace(co_filename=_CELL_FILENAME)
            save_code(pickler, obj)

        class _CanonicalDillPickler(dill.Pickler):
            dispatch = MetaCatchingDict(dill.Pickler.dispatch.copy())
            dispatch[types.CodeType] = save_normalised_code
            dispatch[set] = _sorted_set_saver(None)
            dispatch[frozenset] = _sorted_set_saver(None)

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
        return None
    contiguous = array if array.flags.c_contiguous else array.copy(order="C")
    raw = contiguous.reshape(-1).view("u1") if contiguous.ndim else contiguous.reshape(1).view("u1")
    return _sha("numpy", array.dtype.str, array.dtype.descr, array.shape, memoryview(raw))


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
    name; functions and classes defined in the notebook: canonical dill bytes (file names
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
