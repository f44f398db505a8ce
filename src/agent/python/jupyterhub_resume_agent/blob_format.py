"""The byte layout of one group's blob, and streaming it out and in with its sha256.

Layout (little-endian): ``b"JHRB"``, ``u8 version (1)``, ``u8 serializer (0 pickle, 1 dill)``,
``u32 n_buffers``, ``u64 pickle_length``, ``n_buffers × u64 buffer_length``; then the pickle
bytes; then each out-of-band buffer in order. Buffers are written from memory as they are and
read back with ``readinto`` into preallocated ``bytearray``s: a 1 GB array is never copied into
or out of a bigger buffer. sha256 runs on a second thread while bytes move (hashlib releases
the GIL), so checksumming costs no extra wall time on a multi-core machine.
"""

from __future__ import annotations

import hashlib
import mmap
import queue
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable

from .agent_error import AgentError

MAGIC = b"JHRB"
VERSION = 1
SERIALIZERS = ("pickle", "dill")
_FIXED = struct.Struct("<4sBBIQ")
_LENGTH = struct.Struct("<Q")
#: Bytes moved per read call; the hash thread trails the reader by at most a few of these.
CHUNK = 16 << 20
#: Below this, hashing inline is cheaper than a thread hand-off.
_THREAD_MIN = 4 << 20
#: From this size on, buffers are anonymous memory maps rather than bytearrays.
_MAP_MIN = 1 << 20


def allocate(size: int):
    """A writable buffer of ``size`` bytes to read a blob section into.

    Large ones are anonymous memory maps: ``bytearray(n)`` zero-fills all ``n`` bytes before the
    first byte is read (half a second per GB here), while a map's pages are supplied on first
    write, during the read itself. numpy arrays unpickled from the buffer use it as their memory.
    """
    if size < _MAP_MIN:
        return bytearray(size)
    buffer = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buffer.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass  # transparent huge pages are an optimisation only
    return buffer


def encode_header(serializer: str, pickle_length: int, buffer_lengths: list[int]) -> bytes:
    """The header that precedes a group's pickle and buffers.

    :param serializer: ``"pickle"`` or ``"dill"``.
    """
    return _FIXED.pack(MAGIC, VERSION, SERIALIZERS.index(serializer), len(buffer_lengths), pickle_length) + b"".join(
        _LENGTH.pack(length) for length in buffer_lengths
    )


def blob_parts(serializer: str, pickle_data, buffers: list) -> tuple[list, int]:
    """Everything a blob consists of, in order, as bytes-like objects (nothing is joined).

    :param buffers: ``pickle.PickleBuffer``s (or any bytes-like objects).
    :returns: the parts and their total length.
    """
    raws = [buffer.raw() if hasattr(buffer, "raw") else memoryview(buffer).cast("B") for buffer in buffers]
    header = encode_header(serializer, len(pickle_data), [raw.nbytes for raw in raws])
    parts = [header, pickle_data, *raws]
    return parts, sum(memoryview(part).nbytes for part in parts)


class ParallelHasher:
    """sha256 of pieces fed in order, computed on a helper thread when they are large."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None

    def feed(self, piece) -> None:
        """Adds the next piece (it must not change until ``hexdigest`` returns)."""
        view = memoryview(piece).cast("B")
        if self._thread is None and view.nbytes < _THREAD_MIN:
            self._hash.update(view)
            return
        if self._thread is None:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="jupyterhub-resume-sha256", daemon=True)
            self._thread.start()
        self._queue.put(view)

    def _run(self) -> None:
        while True:
            piece = self._queue.get()
            if piece is None:
                return
            self._hash.update(piece)

    def hexdigest(self) -> str:
        """Waits for every piece and returns the digest."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return self._hash.hexdigest()


def hash_parts(parts: list) -> ParallelHasher:
    """Starts hashing ``parts`` in the background; call ``hexdigest()`` on the result to wait."""
    hasher = ParallelHasher()
    for part in parts:
        hasher.feed(part)
    return hasher


@dataclass
class BlobContents:
    """A blob read back: its serializer, pickle bytes and out-of-band buffers."""

    serializer: str
    pickle_data: bytearray
    #: ``bytearray``s, or anonymous ``mmap``s for large ones (see ``allocate``).
    buffers: list = field(default_factory=list)
    nbytes: int = 0
    sha256: str = ""


def _corrupt(key: str, what: str) -> AgentError:
    return AgentError(
        "RESUME_ERR_AGENT_BLOB_CORRUPT",
        f"blob {key!r} is corrupt: {what}",
        "The checkpoint's copy of this group is damaged; its variables cannot be restored from it.",
    )


def _read_exact(readinto: Callable, view: memoryview, hasher: ParallelHasher, key: str) -> None:
    filled = 0
    total = view.nbytes
    while filled < total:
        step = view[filled : min(total, filled + CHUNK)]
        got = readinto(step)
        if not got:
            raise _corrupt(key, f"ended after {filled} of {total} expected bytes in a section")
        hasher.feed(step[:got])
        filled += got


def read_blob(readinto: Callable, key: str, expected_bytes: int, expected_sha256: str) -> BlobContents:
    """Reads one blob from a stream and checks it against the manifest.

    :param readinto: the stream's ``readinto``.
    :param expected_bytes: the manifest's ``bytes``; the header must add up to exactly this.
    :param expected_sha256: the manifest's ``sha256``.
    :raises AgentError: ``RESUME_ERR_AGENT_BLOB_CORRUPT`` (bad header, short or long blob) or
        ``RESUME_ERR_AGENT_BLOB_MISMATCH`` (checksum differs).
    """
    hasher = ParallelHasher()
    try:
        serializer_code, pickle_data, buffers = _read_sections(readinto, key, expected_bytes, hasher)
    finally:
        # Stops the hash thread on every path; on success this is the digest of all bytes read.
        digest = hasher.hexdigest()
    if digest != expected_sha256:
        raise AgentError(
            "RESUME_ERR_AGENT_BLOB_MISMATCH",
            f"blob {key!r} has sha256 {digest[:12]}…, the manifest says {expected_sha256[:12]}…",
            "The stored blob is not the one the checkpoint wrote; its variables cannot be restored from it.",
        )
    return BlobContents(SERIALIZERS[serializer_code], pickle_data, buffers, expected_bytes, digest)


def _read_sections(readinto: Callable, key: str, expected_bytes: int, hasher: ParallelHasher):
    fixed = bytearray(_FIXED.size)
    if expected_bytes < _FIXED.size:
        raise _corrupt(key, f"the manifest says {expected_bytes} bytes, less than a header")
    _read_exact(readinto, memoryview(fixed), hasher, key)
    magic, version, serializer_code, n_buffers, pickle_length = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise _corrupt(key, "wrong magic (not a jupyterhub-resume blob)")
    if version != VERSION:
        raise _corrupt(key, f"unknown blob version {version}")
    if serializer_code >= len(SERIALIZERS):
        raise _corrupt(key, f"unknown serializer code {serializer_code}")
    lengths_size = n_buffers * _LENGTH.size
    if _FIXED.size + lengths_size + pickle_length > expected_bytes:
        raise _corrupt(key, "the header describes more data than the blob holds")
    lengths_raw = bytearray(lengths_size)
    _read_exact(readinto, memoryview(lengths_raw), hasher, key)
    buffer_lengths = [length for (length,) in _LENGTH.iter_unpack(lengths_raw)]
    if _FIXED.size + lengths_size + pickle_length + sum(buffer_lengths) != expected_bytes:
        raise _corrupt(key, "the header's lengths do not add up to the blob's size")
    pickle_data = bytearray(pickle_length)
    _read_exact(readinto, memoryview(pickle_data), hasher, key)
    buffers = []
    for length in buffer_lengths:
        buffer = allocate(length)
        _read_exact(readinto, memoryview(buffer), hasher, key)
        buffers.append(buffer)
    if readinto(memoryview(bytearray(1))):
        raise _corrupt(key, "there are bytes after the last buffer")
    return serializer_code, pickle_data, buffers
