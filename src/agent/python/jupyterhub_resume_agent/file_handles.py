"""File objects in a checkpoint: saved as a description, never reopened for writing.

dill reopens a pickled file in its saved mode, so a closed ``open(path, "w")`` handle comes
back by truncating the file (DESIGN invariant 7). Here a file handle is saved as (path, mode,
position, closed) instead, and restored without ever writing:

* a closed handle (``with open(...) as f:`` leaves one behind) comes back closed, with the same
  type, ``name`` and ``mode``, without touching the file at all;
* a handle open for reading is reopened for reading at its saved position;
* a handle open for writing cannot be saved this way: it is rebuilt by re-running the cells
  that wrote the file (which is what those cells do anyway).
"""

from __future__ import annotations

import io
import os

_BUFFERED = (io.BufferedReader, io.BufferedWriter, io.BufferedRandom)
_WRITING = frozenset("wax+")


class OpenForWriting(Exception):
    """A file handle that is open for writing; the message names it."""


def _layers(obj):
    """(text layer or None, buffered layer or None, raw FileIO) of a file object, or None."""
    text = buffered = None
    raw = obj
    if type(obj) is io.TextIOWrapper:
        text = obj
        raw = obj.buffer
    if type(raw) in _BUFFERED:
        buffered = raw
        raw = raw.raw
    if type(raw) is not io.FileIO:
        return None
    return text, buffered, raw


def reduce_file_handle(obj):
    """A pickle recipe for a file handle backed by a path, or ``None`` for anything else.

    :raises OpenForWriting: the handle is open and writable.
    """
    if not isinstance(obj, io.IOBase):
        return None
    layers = _layers(obj)
    if layers is None:
        return None
    text, buffered, raw = layers
    path = raw.name
    if not isinstance(path, (str, bytes)):
        return None  # opened from a descriptor: nothing to reopen by name
    mode = getattr(obj, "mode", None) or raw.mode
    kind = "text" if text is not None else type(buffered).__name__ if buffered is not None else "raw"
    if obj.closed:
        return reopen_file_handle, (kind, path, mode, True, 0, None, None, None)
    if _WRITING.intersection(mode) or raw.writable():
        raise OpenForWriting(f"file {os.fsdecode(path)!r} is open for writing ({mode!r})")
    encoding = text.encoding if text is not None else None
    errors = text.errors if text is not None else None
    # Reopened by absolute path (the name may be relative to the kernel's directory).
    return reopen_file_handle, (kind, path, mode, False, obj.tell(), encoding, errors, os.path.abspath(path))


def describe_file_handle(obj) -> tuple | None:
    """(kind, name, mode, closed, position) of a path-backed file handle, else ``None``; never raises."""
    try:
        layers = _layers(obj) if isinstance(obj, io.IOBase) else None
        if layers is None:
            return None
        text, buffered, raw = layers
        kind = "text" if text is not None else type(buffered).__name__ if buffered is not None else "raw"
        closed = obj.closed
        return kind, os.fsdecode(raw.name) if isinstance(raw.name, (str, bytes)) else None, getattr(
            obj, "mode", None
        ) or raw.mode, closed, None if closed else obj.tell()
    except (OSError, ValueError, AttributeError):
        return None


def _closed_stand_in(kind: str, path, mode: str):
    # Built over the null device so the user's file is never opened, then closed: the same type,
    # name and mode as the original, and nothing to read or write.
    writable = bool(_WRITING.intersection(mode))
    raw = io.FileIO(os.devnull, "r+" if kind == "BufferedRandom" else "w" if writable else "r")
    raw.name = path
    if kind == "raw":
        handle = raw
    else:
        buffered_type = {"BufferedWriter": io.BufferedWriter, "BufferedRandom": io.BufferedRandom}.get(
            kind, io.BufferedWriter if (kind == "text" and writable) else io.BufferedReader
        )
        handle = buffered_type(raw)
        if kind == "text":
            handle = io.TextIOWrapper(handle)
            handle.mode = mode
    handle.close()
    return handle


def reopen_file_handle(kind: str, path, mode: str, closed: bool, position: int, encoding, errors, location):
    """Rebuilds a saved file handle (called by the unpickler); never opens a file for writing.

    :param path: the handle's ``name`` as the user opened it.
    :param location: the absolute path to reopen (``None`` for closed handles).
    :raises OSError: a handle open for reading whose file is gone (its group fails).
    """
    if closed:
        return _closed_stand_in(kind, path, mode)
    if _WRITING.intersection(mode):
        raise ValueError(f"refusing to reopen {os.fsdecode(path)!r} in mode {mode!r}")
    if kind == "text":
        handle = open(location, mode, encoding=encoding, errors=errors)  # noqa: SIM115 - handed to the user
    else:
        handle = open(location, mode, buffering=0 if kind == "raw" else -1)  # noqa: SIM115
    handle.seek(position)
    if kind == "raw":
        handle.name = path
    elif kind == "text":
        handle.buffer.raw.name = path
    else:
        handle.raw.name = path
    return handle
