"""A small HTTP server speaking the service's side of the agent protocol, for the agent's tests.

The TypeScript service is built beside the agent and cannot run in this suite, so these tests
exercise the agent's HTTP behaviour against the endpoints exactly as
docs/reference/agent-protocol.md specifies them: token auth for registration, records and
reports; grant auth for blobs; blobs streamed, sized and hashed as they arrive. It stores what
it receives so tests can assert on it, and can be told to answer records with errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/services/resume/"
_CELLS = re.compile(rf"^{PREFIX}api/agent/runs/(?P<run>[^/]+)/cells$")
_REPORT = re.compile(rf"^{PREFIX}api/agent/runs/(?P<run>[^/]+)/restore-report$")
_BLOB = re.compile(rf"^{PREFIX}api/agent/checkpoints/(?P<checkpoint>[^/]+)/blobs/(?P<key>[a-z0-9-]{{1,64}})$")


class ProtocolService:
    """Starts on a free port of 127.0.0.1; ``url`` is the root the agent is given.

    :param token: the hub token the agent must send (``Authorization: token …``).
    :param grant: the grant blob requests must carry (``Authorization: Bearer …``).
    """

    def __init__(self, token: str = "test-hub-token", grant: str = "test-grant") -> None:
        self.token = token
        self.grant = grant
        self.lock = threading.Lock()
        self.registrations: list[dict] = []
        self.register_headers: list[dict] = []
        self.cell_posts: list[list[dict]] = []
        self.cells: dict[str, dict[int, dict]] = {}
        self.reports: list[tuple[str, dict]] = []
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.blob_put_lengths: list[int | None] = []
        #: Set by a test: the ``restore`` to hand to the next registration (then cleared).
        self.pending_restore: dict | None = None
        #: Set by a test: how many cell posts to refuse with 503 before accepting.
        self.fail_cell_posts = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"

    def close(self) -> None:
        """Stops the server."""
        self._server.shutdown()
        self._server.server_close()

    def stored_cells(self, run_id: str) -> list[dict]:
        """The records stored for a run, in ``seq`` order."""
        with self.lock:
            return [self.cells.get(run_id, {})[seq] for seq in sorted(self.cells.get(run_id, {}))]

    def blob_url(self, checkpoint_id: str) -> str:
        """The Target URL for a checkpoint's blobs."""
        return f"{self.url}api/agent/checkpoints/{checkpoint_id}/blobs/"

    def _handler(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:  # keep the test output clean
                pass

            def _json(self, status: int, body: object | None) -> None:
                raw = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if raw:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _token_ok(self) -> bool:
                if self.headers.get("Authorization") != f"token {service.token}":
                    self._body()
                    self._json(401, {"code": "RESUME_ERR_AUTH", "message": "bad token"})
                    return False
                return True

            def _grant_ok(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {service.grant}":
                    self._json(401, {"code": "RESUME_ERR_AUTH", "message": "bad grant"})
                    self.close_connection = True
                    return False
                return True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path
                if path == f"{PREFIX}api/agent/kernels":
                    if not self._token_ok():
                        return
                    registration = json.loads(self._body())
                    run_id = str(uuid.uuid4())
                    with service.lock:
                        service.registrations.append(registration)
                        service.register_headers.append(dict(self.headers))
                        restore, service.pending_restore = service.pending_restore, None
                    self._json(200, {"run_id": run_id, "restore": restore})
                    return
                match = _CELLS.match(path)
                if match:
                    if not self._token_ok():
                        return
                    batch = json.loads(self._body())["cells"]
                    with service.lock:
                        if service.fail_cell_posts > 0:
                            service.fail_cell_posts -= 1
                            refuse = True
                        else:
                            refuse = False
                            service.cell_posts.append(batch)
                            stored = service.cells.setdefault(match["run"], {})
                            for cell in batch:
                                stored.setdefault(cell["seq"], cell)
                    self._json(503 if refuse else 204, {"message": "try later"} if refuse else None)
                    return
                match = _REPORT.match(path)
                if match:
                    if not self._token_ok():
                        return
                    report = json.loads(self._body())
                    with service.lock:
                        service.reports.append((match["run"], report))
                    self._json(204, None)
                    return
                self._body()
                self._json(404, {"message": "no such route"})

            def do_PUT(self) -> None:  # noqa: N802
                match = _BLOB.match(self.path)
                if not match:
                    self._json(404, {"message": "no such route"})
                    return
                if not self._grant_ok():
                    return
                length = self.headers.get("Content-Length")
                digest = hashlib.sha256()
                chunks = []
                remaining = int(length or 0)
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    digest.update(chunk)
                    chunks.append(chunk)
                    remaining -= len(chunk)
                data = b"".join(chunks)
                with service.lock:
                    service.blob_put_lengths.append(None if length is None else int(length))
                    service.blobs[(match["checkpoint"], match["key"])] = data
                self._json(200, {"key": match["key"], "bytes": len(data), "sha256": digest.hexdigest()})

            def do_GET(self) -> None:  # noqa: N802
                match = _BLOB.match(self.path)
                if not match:
                    self._json(404, {"message": "no such route"})
                    return
                if not self._grant_ok():
                    return
                with service.lock:
                    data = service.blobs.get((match["checkpoint"], match["key"]))
                if data is None:
                    self._json(404, {"code": "RESUME_ERR_BLOB_NOT_FOUND", "message": "no such blob"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                view = memoryview(data)
                for start in range(0, len(view), 1 << 20):
                    self.wfile.write(view[start : start + (1 << 20)])

        return Handler
