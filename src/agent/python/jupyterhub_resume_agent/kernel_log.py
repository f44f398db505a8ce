"""Lines for the kernel process's own stderr: the single-user server's log, not a notebook cell."""

from __future__ import annotations

import os
import sys
import traceback


def log_line(message: str) -> None:
    """Writes one line to the kernel process's own stderr (the server's log), not to a cell.

    ipykernel redirects file descriptor 2 into the notebook; it keeps the original as
    ``sys.stderr._original_stdstream_copy``, which is where operators look.
    """
    line = (message.replace("\n", " ") + "\n").encode("utf-8", "replace")
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    try:
        if isinstance(fd, int):
            os.write(fd, line)
            return
        stream = sys.__stderr__
        if stream is not None:
            stream.write(line.decode("utf-8"))
            stream.flush()
    except (OSError, ValueError):
        pass  # nowhere to log to; the agent must not fail because of it


def log_exception(message: str, error: BaseException) -> None:
    """Writes ``message`` and the exception's traceback to the kernel process's stderr (a bug report)."""
    log_line(f"jupyterhub-resume: {message}")
    for line in "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip("\n").split("\n"):
        log_line(line)
