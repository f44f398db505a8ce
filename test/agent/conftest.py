"""Fixtures for the agent's tests: real IPython kernels with the agent loaded at start.

Kernels are started the way jupyter_server starts them (a ``kernel-<id>.json`` connection
file, the ``python3`` kernelspec of the project's venv) with ``--ext=jupyterhub_resume_agent``
and ``src/agent/python`` on ``PYTHONPATH``. Commands are driven the way the service drives
them: a silent execute whose user expression calls ``command(<JSON string literal>)``, the
answer read from ``user_expressions.r.data["application/json"]``.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager


REPO = Path(__file__).resolve().parents[2]
AGENT_PATH = REPO / "src" / "agent" / "python"


@dataclass
class CellRun:
    """What one executed cell produced."""

    reply: dict
    stdout: str = ""
    stderr: str = ""
    results: list = field(default_factory=list)
    execute_input_count: int | None = None

    @property
    def execution_count(self) -> int | None:
        """The execution count the kernel gave the cell."""
        return self.reply.get("execution_count")


class KernelSession:
    """A running kernel and its client, with helpers to run cells and agent commands."""

    def __init__(self, manager: KernelManager, client, stderr_path: Path, connection_file: Path) -> None:
        self.manager = manager
        self.client = client
        self.stderr_path = stderr_path
        self.connection_file = connection_file
        self.kernel_id = connection_file.name[len("kernel-") : -len(".json")]

    def run(self, code: str, timeout: float = 120) -> CellRun:
        """Executes a cell like a notebook does (stored in history) and collects its output."""
        run = CellRun(reply={})

        def on_output(message: dict) -> None:
            kind = message["msg_type"]
            content = message["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    run.stdout += content["text"]
                else:
                    run.stderr += content["text"]
            elif kind in ("execute_result", "display_data"):
                run.results.append(content["data"])
            elif kind == "execute_input":
                run.execute_input_count = content.get("execution_count")

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=on_output)
        run.reply = reply["content"]
        return run

    def _silent(self, expressions: dict, timeout: float) -> dict:
        msg_id = self.client.execute("", silent=True, store_history=False, user_expressions=expressions)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply to a silent execute")
            try:
                reply = self.client.get_shell_msg(timeout=remaining)
            except queue.Empty:
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                assert reply["content"]["status"] == "ok", reply["content"]
                return reply["content"]["user_expressions"]

    def command(self, request: dict, timeout: float = 120) -> dict:
        """Sends one agent command exactly as the service does and returns its JSON answer."""
        literal = json.dumps(json.dumps(request))
        result = self._silent({"r": f"__import__('jupyterhub_resume_agent').command({literal})"}, timeout)["r"]
        assert result["status"] == "ok", result
        return result["data"]["application/json"]

    def value(self, expression: str, timeout: float = 60):
        """Evaluates a JSON-able expression silently (no history, no execution count)."""
        result = self._silent({"v": f"__import__('json').dumps({expression})"}, timeout)["v"]
        assert result["status"] == "ok", result
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    def stderr_text(self) -> str:
        """What the kernel process wrote to its own stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def shutdown(self) -> None:
        """Stops the channels and the kernel process."""
        try:
            self.client.stop_channels()
        finally:
            self.manager.shutdown_kernel(now=True)


def kernel_environment(
    extra: dict[str, str] | None = None, python_path: list[str] | None = None, agent_on_path: bool = True
) -> dict[str, str]:
    """A clean environment for a kernel: no resume or hub variables unless given."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTERHUB_", "JPY_")) and key not in ("PYTHONPATH", "IPYTHONDIR")
    }
    env["PYTHONPATH"] = os.pathsep.join([*(python_path or []), *([str(AGENT_PATH)] if agent_on_path else [])])
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env.update(extra or {})
    return env


class KernelPool:
    """Starts kernels with the agent loaded at start and shuts every one of them down."""

    def __init__(self, tmp_path_factory) -> None:
        self._tmp = tmp_path_factory
        self.sessions: list[KernelSession] = []

    def start(
        self, env: dict[str, str] | None = None, python_path: list[str] | None = None, with_agent: bool = True
    ) -> KernelSession:
        """Starts one kernel and waits until it answers.

        :param env: extra environment variables (e.g. ``JUPYTERHUB_RESUME_URL``).
        :param python_path: directories put before the agent on ``PYTHONPATH``.
        :param with_agent: ``False`` for a plain kernel (agent neither on the path nor loaded).
        """
        workdir = self._tmp.mktemp("kernel")
        ipython_dir = workdir / "ipython"
        ipython_dir.mkdir()
        connection_file = workdir / f"kernel-{uuid.uuid4()}.json"
        stderr_path = workdir / "stderr.log"
        environment = kernel_environment(env, python_path, agent_on_path=with_agent)
        environment["IPYTHONDIR"] = str(ipython_dir)  # no user profile or start-up files
        manager = KernelManager(kernel_name="python3", connection_file=str(connection_file))
        with open(stderr_path, "wb") as stderr:  # the child keeps its own copy of the descriptor
            manager.start_kernel(
                extra_arguments=["--ext=jupyterhub_resume_agent"] if with_agent else [],
                env=environment,
                stderr=stderr,
                cwd=str(workdir),
            )
        client = manager.client()
        client.start_channels()
        session = KernelSession(manager, client, stderr_path, connection_file)
        self.sessions.append(session)
        try:
            client.wait_for_ready(timeout=90)
        except RuntimeError:
            raise RuntimeError(f"kernel did not start; stderr:\n{session.stderr_text()}") from None
        return session

    def shutdown_all(self) -> None:
        """Shuts down every kernel this pool started (errors in one do not stop the others)."""
        for session in self.sessions:
            try:
                session.shutdown()
            except Exception:  # noqa: BLE001 - keep shutting the others down
                pass
        self.sessions.clear()


@pytest.fixture
def start_kernel(tmp_path_factory):
    """``start_kernel(env=..., python_path=...)``: kernels shut down after the test."""
    pool = KernelPool(tmp_path_factory)
    yield pool.start
    pool.shutdown_all()


@pytest.fixture(scope="module")
def module_kernels(tmp_path_factory):
    """A kernel pool shared by the tests of one module, shut down after the module."""
    pool = KernelPool(tmp_path_factory)
    yield pool
    pool.shutdown_all()


def wait_until(condition, timeout: float = 30, interval: float = 0.05, message: str = "condition"):
    """Polls ``condition`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


def run_notebook(kernel: KernelSession, cells: list[str]) -> KernelSession:
    """Runs ``cells`` in order as a user would; fails the test at the first one that raises."""
    for cell in cells:
        reply = kernel.run(cell).reply
        assert reply["status"] == "ok", (cell, reply)
    return kernel


def checkpoint_to_dir(kernel: KernelSession, checkpoint_id: str, directory: Path) -> dict:
    """Checkpoints ``kernel`` into ``directory``.

    :returns: ``{"manifest", "cells", "dir", "description"}``: what a restore needs, and the
        kernel's description right after the checkpoint (to compare a restored kernel with).
    """
    manifest = kernel.command({"op": "checkpoint", "checkpoint_id": checkpoint_id, "target": {"kind": "dir", "path": str(directory)}})
    assert "error" not in manifest, manifest
    cells = kernel.command({"op": "history"})["cells"]
    return {"manifest": manifest, "cells": cells, "dir": directory, "description": kernel.command({"op": "describe"})}


def restore_from_dir(kernel: KernelSession, taken: dict) -> dict:
    """Restores a ``checkpoint_to_dir`` result into ``kernel`` (the agent's own replay, no plan).

    :returns: the RestoreReport, or the agent's error answer.
    """
    source = {"kind": "dir", "path": str(taken["dir"])}
    return kernel.command({"op": "restore", "manifest": taken["manifest"], "cells": taken["cells"], "source": source})
