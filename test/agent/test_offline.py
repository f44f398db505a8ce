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
