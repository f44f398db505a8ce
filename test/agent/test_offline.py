"""Without JUPYTERHUB_RESUME_URL the agent never touches the network."""

from __future__ import annotations

import socket

NETWORK_AUDIT = '''
import sys

events = []


def _audit(event, args):
    if event in ("socket.connect", "http.client.connect", "urllib.Request"):
        events.append(f"{event} {args[1:]!r}")


sys.addaudithook(_audit)
'''


def _audited_path(tmp_path) -> str:
    (tmp_path / "sitecustomize.py").write_text(NETWORK_AUDIT)
    return str(tmp_path)


def _exercise(kernel, tmp_path) -> None:
    for cell in ["import numpy as np", "data = np.ones(1000)", "words = {'a': [1, 2]}", "!echo shell", "%time t = 1"]:
        assert kernel.run(cell).reply["status"] == "ok"
    kernel.command({"op": "flush", "timeout_s": 2})
    kernel.command({"op": "status"})
    kernel.command({"op": "describe"})
    kernel.command({"op": "history"})
    manifest = kernel.command({"op": "checkpoint", "checkpoint_id": "off", "target": {"kind": "dir", "path": str(tmp_path / "ck")}})
    assert "error" not in manifest


def test_a_kernel_without_a_service_url_makes_no_network_calls(start_kernel, tmp_path):
    kernel = start_kernel(python_path=[_audited_path(tmp_path)])
    _exercise(kernel, tmp_path)
    assert kernel.value("__import__('sitecustomize').events") == []


def test_the_network_audit_sees_the_calls_of_a_kernel_with_a_service_url(start_kernel, tmp_path):
    # The control for the test above: the same audit hook does catch the agent's connections.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kernel = start_kernel(
        env={"JUPYTERHUB_RESUME_URL": f"http://127.0.0.1:{port}/services/resume/"}, python_path=[_audited_path(tmp_path)]
    )
    events = kernel.value("__import__('sitecustomize').events")
    assert any(event.startswith(("socket.connect", "http.client.connect")) for event in events), events


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_service_costs_one_line_on_stderr_and_the_kernel_works(start_kernel):
    url = f"http://127.0.0.1:{_free_port()}/services/resume/"
    kernel = start_kernel(env={"JUPYTERHUB_RESUME_URL": url, "JUPYTERHUB_API_TOKEN": "secret-token-value"})
    cell = kernel.run("answer = 6 * 7\nprint(answer)")
    assert cell.reply["status"] == "ok" and cell.stdout == "42\n"
    assert "jupyterhub-resume" not in cell.stderr
    lines = [line for line in kernel.stderr_text().splitlines() if "jupyterhub-resume" in line]
    assert len(lines) == 1 and "cannot reach the resume service" in lines[0], kernel.stderr_text()
    assert "secret-token-value" not in kernel.stderr_text()
    status = kernel.command({"op": "status"})
    assert status["run_id"] is None and status["cells_recorded"] == 1
    assert kernel.command({"op": "flush", "timeout_s": 1}) == {"records_pending": 0}
