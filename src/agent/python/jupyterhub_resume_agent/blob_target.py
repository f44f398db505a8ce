"""Where a checkpoint's blobs go and come from: a directory, or the service over HTTP."""

from __future__ import annotations

import http.client
import os
from urllib.parse import urljoin

from .agent_error import AgentError
from .blob_format import BlobContents, hash_parts, read_blob
from .protocol import BLOB_KEY
from .service_client import get_blob, put_blob


def _check_key(key: str) -> str:
    if not BLOB_KEY.match(key):
        raise AgentError(
            "RESUME_ERR_AGENT_BAD_REQUEST", f"invalid blob key {key!r}", "Blob keys match [a-z0-9-]{1,64}."
        )
    return key


class DirTarget:
    """Blobs as files named by key in one directory (what ``verify`` uses).

    A blob is written to a temporary name and renamed into place, so a crash never leaves a
    half-written file under a key.

    :param path: an absolute directory; created when a checkpoint writes to it.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, key: str, parts: list, total: int) -> tuple[int, str]:
        """Writes one blob.

        :returns: its size and sha256.
        :raises AgentError: ``RESUME_ERR_AGENT_TARGET_UNWRITABLE`` on file-system errors.
        """
        final = os.path.join(self.path, _check_key(key))
        temporary = os.path.join(self.path, f".{key}.{os.getpid()}.partial")
        hasher = hash_parts(parts)
        try:
            os.makedirs(self.path, exist_ok=True)
            with open(temporary, "wb", buffering=0) as handle:
                for part in parts:
                    view = memoryview(part).cast("B")
                    written = 0
                    while written < view.nbytes:
                        written += handle.write(view[written:])
            os.replace(temporary, final)
        except OSError as error:
            hasher.hexdigest()
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise AgentError(
                "RESUME_ERR_AGENT_TARGET_UNWRITABLE",
                f"cannot write blob {key!r} to {self.path}: {error.strerror or error}",
                "Check that the directory exists or can be created, is writable and has space.",
            ) from error
        return total, hasher.hexdigest()

    def read(self, key: str, expected_bytes: int, expected_sha256: str) -> BlobContents:
        """Reads one blob and checks its size and sha256.

        :raises AgentError: ``RESUME_ERR_AGENT_BLOB_NOT_FOUND``, ``…_BLOB_CORRUPT``, ``…_BLOB_MISMATCH``.
        """
        path = os.path.join(self.path, _check_key(key))
        try:
            handle = open(path, "rb", buffering=0)
        except FileNotFoundError as error:
            raise AgentError(
                "RESUME_ERR_AGENT_BLOB_NOT_FOUND",
                f"blob {key!r} is missing from {self.path}",
                "The checkpoint directory is incomplete; its variables cannot be restored from it.",
            ) from error
        except OSError as error:
            raise AgentError(
                "RESUME_ERR_AGENT_BLOB_NOT_FOUND",
                f"cannot open blob {key!r} in {self.path}: {error.strerror or error}",
                "Check the directory's permissions.",
            ) from error
        with handle:
            return read_blob(handle.readinto, key, expected_bytes, expected_sha256)


class HttpTarget:
    """Blobs uploaded to and downloaded from the service with a grant.

    :param url: the ``…/blobs/`` URL from the Target.
    :param grant: the JWT, sent as ``Authorization: Bearer``.
    :param timeout_s: socket timeout for each network operation.
    """

    def __init__(self, url: str, grant: str, timeout_s: float) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self._grant = grant
        self.timeout_s = timeout_s

    def write(self, key: str, parts: list, total: int) -> tuple[int, str]:
        """Uploads one blob with ``PUT`` and checks the service stored what was sent.

        :raises AgentError: transport errors, or ``RESUME_ERR_AGENT_BLOB_MISMATCH`` when the
            service's size or sha256 differs from the agent's.
        """
        hasher = hash_parts(parts)
        try:
            answer = put_blob(urljoin(self.url, _check_key(key)), self._grant, parts, total, self.timeout_s)
        finally:
            digest = hasher.hexdigest()
        if answer["sha256"] != digest or answer["bytes"] != total:
            raise AgentError(
                "RESUME_ERR_AGENT_BLOB_MISMATCH",
                f"the service stored blob {key!r} as {answer['bytes']} bytes sha256 {answer['sha256'][:12]}…, "
                f"the agent sent {total} bytes sha256 {digest[:12]}…",
                "Bytes were changed on the way (a proxy?); retry the checkpoint.",
            )
        return total, digest

    def read(self, key: str, expected_bytes: int, expected_sha256: str) -> BlobContents:
        """Downloads one blob and checks its size and sha256."""
        response = get_blob(urljoin(self.url, _check_key(key)), self._grant, self.timeout_s)
        try:
            return read_blob(response.readinto, key, expected_bytes, expected_sha256)
        except (OSError, http.client.HTTPException) as error:
            raise AgentError(
                "RESUME_ERR_AGENT_SERVICE_UNREACHABLE",
                f"download of blob {key!r} broke off: {type(error).__name__}: {error}",
                "Check the network between the kernel and the resume service.",
            ) from error
        finally:
            response.close()


def open_target(target: dict, timeout_s: float) -> DirTarget | HttpTarget:
    """The target a (validated) Target object describes.

    :param timeout_s: socket timeout for HTTP targets.
    """
    if target["kind"] == "dir":
        return DirTarget(target["path"])
    return HttpTarget(target["url"], target["grant"], timeout_s)
