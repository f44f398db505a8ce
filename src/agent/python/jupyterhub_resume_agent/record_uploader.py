"""Posts cell records to the service from a background thread, in order and in batches."""

from __future__ import annotations

import threading
import time
from typing import Callable

from .agent_error import AgentError


class RecordUploader:
    """A queue of cell records that one daemon thread posts in order, a batch at a time.

    Nothing here blocks the user's cell: ``submit`` appends and wakes the thread. A failed post
    keeps its records at the head of the queue; they go again with the next batch (a new record,
    a ``flush``, or a back-off timer, whichever comes first). ``seq`` makes re-posting a record
    harmless on the service side.

    :param send: posts one batch; raises on failure (``AgentError`` or ``OSError``).
    :param batch_size: most records per post.
    :param retry_after_s: first back-off after a failure (doubles up to ``max_retry_after_s``).
    """

    def __init__(
        self,
        send: Callable[[list[dict]], None],
        batch_size: int = 200,
        retry_after_s: float = 2.0,
        max_retry_after_s: float = 60.0,
    ) -> None:
        self._send = send
        self._batch_size = batch_size
        self._retry_after_s = retry_after_s
        self._max_retry_after_s = max_retry_after_s
        self._cond = threading.Condition()
        self._pending: list[dict] = []
        self._thread: threading.Thread | None = None
        self._closing = False
        self._wake = False
        self._attempts = 0  # finished post attempts, successful or not
        self._failures = 0
        self.last_error: Exception | None = None

    @property
    def pending(self) -> int:
        """Records not yet accepted by the service."""
        with self._cond:
            return len(self._pending)

    def submit(self, record: dict) -> None:
        """Queues a record and wakes the sender (never blocks on the network)."""
        with self._cond:
            self._pending.append(record)
            self._wake = True
            self._ensure_thread()
            self._cond.notify_all()

    def flush(self, timeout_s: float) -> int:
        """Waits until every queued record reached the service.

        :param timeout_s: longest wait in seconds.
        :returns: 0.
        :raises AgentError: ``RESUME_ERR_AGENT_RECORDS_NOT_SENT`` if a post fails during the wait
            or the time runs out; records stay queued either way.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            if not self._pending:
                return 0
            self._ensure_thread()
            attempts_at_start = self._attempts
            failures_at_start = self._failures
            self._wake = True
            self._cond.notify_all()
            while self._pending:
                if self._failures > failures_at_start and self._attempts > attempts_at_start:
                    raise AgentError(
                        "RESUME_ERR_AGENT_RECORDS_NOT_SENT",
                        f"{len(self._pending)} cell record(s) could not be posted: {self.last_error}",
                        "Check that the resume service is reachable from the kernel; records are kept "
                        "and retried with the next batch.",
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AgentError(
                        "RESUME_ERR_AGENT_RECORDS_NOT_SENT",
                        f"{len(self._pending)} cell record(s) still pending after {timeout_s:g} s",
                        "The service is slow to accept records; retry the flush with a longer timeout_s.",
                    )
                self._cond.wait(remaining)
            return 0

    def close(self, timeout_s: float = 1.0) -> None:
        """Stops the thread after one last attempt to send what is queued (bounded by ``timeout_s``)."""
        with self._cond:
            self._closing = True
            self._wake = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _ensure_thread(self) -> None:
        # Called with the lock held. Started lazily: a kernel that never runs a cell never starts it.
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=self._run, name="jupyterhub-resume-records", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        backoff = self._retry_after_s
        retry_at: float | None = None
        while True:
            with self._cond:
                while True:
                    if self._pending and (self._wake or (retry_at is not None and time.monotonic() >= retry_at)):
                        break
                    if self._closing:
                        return
                    timeout = None if retry_at is None or not self._pending else max(0.0, retry_at - time.monotonic())
                    self._cond.wait(timeout)
                self._wake = False
                batch = self._pending[: self._batch_size]
                closing = self._closing
            try:
                self._send(batch)
            except Exception as error:  # noqa: BLE001 - any failure means "try again later"
                with self._cond:
                    self.last_error = error
                    self._attempts += 1
                    self._failures += 1
                    self._cond.notify_all()
                if closing:
                    return
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, self._max_retry_after_s)
                continue
            with self._cond:
                # Only this thread removes records, so the batch is still the head of the queue.
                del self._pending[: len(batch)]
                self._attempts += 1
                self.last_error = None
                if self._pending:
                    self._wake = True  # more than one batch was waiting: send the rest now
                self._cond.notify_all()
            backoff = self._retry_after_s
            retry_at = None
