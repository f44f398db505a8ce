"""The agent records every user cell: what it bound, removed, rebound, how long it took, errors."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def kernel(module_kernels):
    return module_kernels.start()


def _cells(kernel) -> list[dict]:
    return kernel.command({"op": "history"})["cells"]


def test_records_created_rebound_and_deleted_names(kernel):
    before = len(_cells(kernel))
    kernel.run("x = [1, 2]\ny = 'text'")
    kernel.run("x = [3]\nx.append(4)\ny = y")  # x rebound, y rebound to the same object: not rebound
    kernel.run("del y\nz = {'k': x}")
    records = _cells(kernel)[before:]
    assert [r["code"] for r in records] == ["x = [1, 2]\ny = 'text'", "x = [3]\nx.append(4)\ny = y", "del y\nz = {'k': x}"]
    assert (records[0]["created"], records[0]["deleted"], records[0]["rebound"]) == (["x", "y"], [], [])
    assert (records[1]["created"], records[1]["deleted"], records[1]["rebound"]) == ([], [], ["x"])
    assert (records[2]["created"], records[2]["deleted"], records[2]["rebound"]) == (["z"], ["y"], [])
    assert [r["seq"] for r in records] == list(range(before + 1, before + 4))
    for record in records:
        assert record["status"] == "ok" and record["error"] is None
        assert record["started_at"].endswith("Z") and record["duration_s"] >= 0


def test_records_the_error_of_a_failing_cell_and_what_it_bound_before_failing(kernel):
    kernel.run("partial = 1\nraise ValueError('boom')")
    kernel.run("def broken(:\n    pass")
    syntax, = _cells(kernel)[-1:]
    failing = _cells(kernel)[-2]
    assert failing["status"] == "error"
    assert failing["error"] == {"ename": "ValueError", "evalue": "boom"}
    assert failing["created"] == ["partial"]
    assert syntax["status"] == "error" and syntax["error"]["ename"] == "SyntaxError"
    assert syntax["created"] == []


def test_records_magic_and_shell_cells_with_their_raw_code(kernel):
    timed = kernel.run("%time timed = sum(range(10))")
    shell = kernel.run("!echo hello-from-shell")
    assert "hello-from-shell" in shell.stdout
    records = _cells(kernel)[-2:]
    assert records[0]["code"] == "%time timed = sum(range(10))"
    assert records[0]["created"] == ["timed"]
    assert records[0]["execution_count"] == timed.execution_count
    assert records[1]["code"] == "!echo hello-from-shell"
    assert records[1]["status"] == "ok"
    assert records[1]["execution_count"] == shell.execution_count


def test_commands_leave_no_trace_in_history_or_the_execution_count(kernel):
    first = kernel.run("marker = 1")
    for _ in range(3):
        kernel.command({"op": "status"})
        kernel.command({"op": "describe"})
    second = kernel.run("marker = 2")
    assert second.execution_count == first.execution_count + 1
    records = _cells(kernel)
    assert [r["code"] for r in records[-2:]] == ["marker = 1", "marker = 2"]
    assert "_" not in {name for r in records for name in r["created"]}


def test_status_counts_recorded_cells_and_reports_no_run_without_a_service(kernel):
    status = kernel.command({"op": "status"})
    assert status["protocol"] == 1
    assert status["run_id"] is None
    assert status["records_pending"] == 0
    assert status["cells_recorded"] == len(_cells(kernel))
    assert status["kernel_id"] == kernel.kernel_id
    assert kernel.command({"op": "flush", "timeout_s": 1}) == {"records_pending": 0}


def test_loading_the_extension_again_changes_nothing(kernel):
    before = len(_cells(kernel))
    kernel.run("%load_ext jupyterhub_resume_agent")
    kernel.run("__import__('jupyterhub_resume_agent').load_ipython_extension(get_ipython())")
    kernel.run("after_reload = 1")
    records = _cells(kernel)[before:]
    assert [r["code"] for r in records][-1] == "after_reload = 1"
    assert len(records) == 3  # one record per cell: the hooks were not registered twice


def test_bad_requests_answer_with_an_error_instead_of_raising(kernel):
    unknown = kernel.command({"op": "explode"})
    assert unknown["error"]["type"] == "RESUME_ERR_AGENT_BAD_REQUEST"
    relative = kernel.command({"op": "checkpoint", "checkpoint_id": "c", "target": {"kind": "dir", "path": "rel"}})
    assert relative["error"]["type"] == "RESUME_ERR_AGENT_BAD_REQUEST"
    assert "absolute" in relative["error"]["message"]
    assert kernel.run("1 + 1").reply["status"] == "ok"


def test_records_a_rebinding_among_hundreds_of_names(kernel):
    # How long the hooks take is measured by the benchmarks, not asserted here.
    kernel.run("for _i in range(400):\n    globals()[f'v{_i}'] = [_i]")
    for index in range(15):
        kernel.run(f"v{index} = {index}")
    assert _cells(kernel)[-1]["rebound"] == ["v14"]
