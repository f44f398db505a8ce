"""HTTP calls from the agent to the resume service (docs/reference/agent-protocol.md)."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Iterable
from urllib.parse import urljoin, urlsplit

from .agent_error import AgentError
from .agent_settings import AgentSettings

#: Largest piece handed to one ``sendall``: Python's socket timeout covers a whole ``sendall``, so a
#: 1 GB buffer in one call would need the whole upload to finish within one timeout.
SEND_CHUNK = 8 << 20


class HttpResponse:
    """An open response whose body is read by the caller (``readinto``), then ``close``-d."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connection = connection
        self.response = response
        self.status = response.status
        self.length = response.length

    def readinto(self, buffer) -> int:
        """Reads up to ``len(buffer)`` body bytes into ``buffer``; 0 at the end."""
        return self.response.readinto(buffer)

    def read_text(self, limit: int = 2000) -> str:
        """The first ``limit`` characters of the body, for error messages."""
        try:
            return self.response.read(limit).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            return ""

    def close(self) -> None:
        """Closes the response and its connection."""
        try:
            self.response.close()
        finally:
            self._connection.close()


def open_connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    """Opens a connection for an absolute http(s) URL.

    :returns: the connection and the path (with query) to request.
    :raises AgentError: ``RESUME_ERR_AGENT_BAD_URL`` for anything but http(s).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AgentError(
            "RESUME_ERR_AGENT_BAD_URL",
            f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}{parts.path}",
            "Service URLs must be absolute http:// or https:// URLs.",
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    return connection, path


def _safe_url(url: str) -> str:
    # For messages: scheme, host and path only; a query string could carry a secret.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _unreachable(url: str, error: BaseException) -> AgentError:
    return AgentError(
        "RESUME_ERR_AGENT_SERVICE_UNREACHABLE",
        f"cannot reach the resume service at {_safe_url(url)}: {type(error).__name__}: {error}",
        "Check that the service is running and that JUPYTERHUB_RESUME_URL is the address the "
        "kernel can reach it at.",
    )


def _bad_status(method: str, url: str, status: int, body: str) -> AgentError:
    # Only a download can miss a blob; a 404 on upload means the grant's checkpoint is gone.
    missing_blob = status == 404 and "/blobs/" in url and method == "GET"
    code = "RESUME_ERR_AGENT_BLOB_NOT_FOUND" if missing_blob else "RESUME_ERR_AGENT_SERVICE_STATUS"
    blob_request = "/blobs/" in url
    hint = {
        401: (
            "The blob grant was refused: it expired, or the service restarted with a new signing key "
            "(set RESUME_GRANT_SECRET); the service issues a new grant with its next command."
            if blob_request
            else "The server's hub token was refused; restarting the server gives it a fresh token."
        ),
        403: "The service refused this kernel's token or grant for this resource.",
    }.get(status, "See the service's log for this request.")
    return AgentError(code, f"{method} {_safe_url(url)} answered {status}: {body[:300]}", hint)


def send_request(
    method: str,
    url: str,
    headers: dict[str, str],
    body_parts: Iterable = (),
    content_length: int | None = None,
    timeout_s: float = 30.0,
) -> HttpResponse:
    """Sends one request, streaming the body parts as they are (memoryviews are never joined).

    :param body_parts: bytes-like objects sent in order; ``content_length`` must be their total.
    :returns: the open response, whatever its status.
    :raises AgentError: ``RESUME_ERR_AGENT_SERVICE_UNREACHABLE`` on connection failures.
    """
    connection, path = open_connection(url, timeout_s)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if content_length is not None:
            connection.putheader("Content-Length", str(content_length))
        connection.endheaders()
        send_error: OSError | None = None
        try:
            for part in body_parts:
                view = memoryview(part).cast("B")
                for start in range(0, len(view), SEND_CHUNK):
                    connection.send(view[start : start + SEND_CHUNK])
        except OSError as error:
            # The service may have answered early (e.g. 401) and closed: prefer its answer.
            send_error = error
        try:
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            raise _unreachable(url, send_error or error) from error
        return HttpResponse(connection, response)
    except AgentError:
        connection.close()
        raise
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise _unreachable(url, error) from error


class ServiceClient:
    """The agent's side of the service's HTTP API.

    Registration, cell records and restore reports authenticate with the server's hub token
    (``Authorization: token …``); blobs with a short-lived grant (``Authorization: Bearer …``).
    Tokens only ever travel in headers, and no message this class builds contains one.

    :param settings: the agent's settings; ``resume_url`` must be set.
    """

    def __init__(self, settings: AgentSettings) -> None:
        if not settings.resume_url:
            raise ValueError("ServiceClient needs JUPYTERHUB_RESUME_URL")
        self.base_url = settings.resume_url
        self._token = settings.api_token or ""
        self.timeout_s = settings.timeout_s

    def url(self, path: str) -> str:
        """An absolute URL for a path relative to the service root."""
        return urljoin(self.base_url, path)

    def post_json(self, path: str, payload: object, timeout_s: float | None = None) -> object:
        """POSTs JSON with the hub token.

        :param timeout_s: default: the agent's timeout (``JUPYTERHUB_RESUME_TIMEOUT``).
        :returns: the decoded JSON answer, or ``None`` for an empty one (204).
        :raises AgentError: unreachable service, a non-2xx status, or an answer that is not JSON.
        """
        url = self.url(path)
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"token {self._token}"
        response = send_request("POST", url, headers, [body], len(body), timeout_s or self.timeout_s)
        try:
            if not 200 <= response.status < 300:
                raise _bad_status("POST", url, response.status, response.read_text())
            try:
                raw = response.response.read()
            except (OSError, http.client.HTTPException) as error:
                raise _unreachable(url, error) from error
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except ValueError as error:
                raise AgentError(
                    "RESUME_ERR_AGENT_BAD_ANSWER",
                    f"POST {_safe_url(url)} answered with something that is not JSON",
                    "The URL may point at something other than the resume service.",
                ) from error
        finally:
            response.close()

    def register(self, registration: dict) -> object:
        """``POST api/agent/kernels``: the raw answer (validated by the caller)."""
        return self.post_json("api/agent/kernels", registration)

    def post_cells(self, run_id: str, cells: list[dict]) -> None:
        """``POST api/agent/runs/{run_id}/cells``."""
        self.post_json(f"api/agent/runs/{run_id}/cells", {"cells": cells})

    def post_ended(self, run_id: str, timeout_s: float) -> None:
        """``POST api/agent/runs/{run_id}/ended``: the kernel is exiting normally."""
        self.post_json(f"api/agent/runs/{run_id}/ended", {}, timeout_s=timeout_s)

    def post_restore_report(self, run_id: str, report: dict) -> None:
        """``POST api/agent/runs/{run_id}/restore-report``."""
        self.post_json(f"api/agent/runs/{run_id}/restore-report", report)


def put_blob(url: str, grant: str, parts: list, total: int, timeout_s: float) -> dict:
    """``PUT …/blobs/{key}``: streams the parts as the body.

    :returns: the service's ``{"key", "bytes", "sha256"}``.
    :raises AgentError: unreachable, non-2xx, or a malformed answer.
    """
    headers = {"Content-Type": "application/octet-stream", "Authorization": f"Bearer {grant}"}
    response = send_request("PUT", url, headers, parts, total, timeout_s)
    try:
        if not 200 <= response.status < 300:
            raise _bad_status("PUT", url, response.status, response.read_text())
        try:
            answer = json.loads(response.response.read() or b"null")
        except (ValueError, OSError, http.client.HTTPException) as error:
            raise AgentError(
                "RESUME_ERR_AGENT_BAD_ANSWER",
                f"PUT {_safe_url(url)} did not answer with JSON",
                "The blob URL may point at something other than the resume service.",
            ) from error
        if not isinstance(answer, dict) or not isinstance(answer.get("sha256"), str) or not isinstance(answer.get("bytes"), int):
            raise AgentError(
                "RESUME_ERR_AGENT_BAD_ANSWER",
                f"PUT {_safe_url(url)} answered without bytes and sha256",
                "The service must answer a blob upload with {key, bytes, sha256}.",
            )
        return answer
    finally:
        response.close()


def get_blob(url: str, grant: str, timeout_s: float) -> HttpResponse:
    """``GET …/blobs/{key}``: the open response to read the blob from.

    :raises AgentError: unreachable, 404 (``RESUME_ERR_AGENT_BLOB_NOT_FOUND``) or another non-2xx.
    """
    headers = {"Accept": "application/octet-stream", "Authorization": f"Bearer {grant}"}
    response = send_request("GET", url, headers, (), None, timeout_s)
    if not 200 <= response.status < 300:
        try:
            raise _bad_status("GET", url, response.status, response.read_text())
        finally:
            response.close()
    return response
