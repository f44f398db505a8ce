"""The agent's HTTP side: registration, cell records, blobs, and the restore at kernel start."""

from __future__ import annotations

import hashlib
import re
import socket

from conftest import wait_until

NOTEBOOK = [
    "import numpy as np",
    "values = np.arange(1_000_000, dtype='int64')",
    "total = int(values.sum())\nlabels = ['a', 'b']\nsame = labels",
    "stream = (i for i in range(10)); skipped = next(stream)",
    "def twice(v):\n    return 2 * v",
]


def _service_env(service, **extra) -> dict:
    env = {
        "JUPYTERHUB_RESUME_URL": service.url,
        "JUPYTERHUB_API_TOKEN": service.token,
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:41213/user/alice/",
        "JPY_SESSION_NAME": "work/analysis.ipynb",
    }
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_registers_at_start_with_the_kernels_identity(start_kernel, protocol_service):
    kernel = start_kernel(env=_service_env(protocol_service))
    registration, = protocol_service.registrations
    assert registration["protocol"] == 1
    assert registration["kernel_id"] == kernel.kernel_id
    assert registration["kernel_name"] == "python3"
    assert registration["notebook_path"] == "work/analysis.ipynb"
    assert registration["server_url"] == "http://127.0.0.1:41213/user/alice/"
    assert re.fullmatch(r"\d+\.\d+\.\d+", registration["python_version"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", registration["started_at"])
    assert protocol_service.register_headers[0]["Authorization"] == f"token {protocol_service.token}"
    assert kernel.command({"op": "status"})["run_id"] is not None


def test_posts_cell_records_in_order_and_flush_waits_for_them(start_kernel, protocol_service):
    kernel = start_kernel(env=_service_env(protocol_service))
    run_id = kernel.command({"op": "status"})["run_id"]
    codes = [f"step_{index} = {index}" for index in range(6)]
    for code in codes:
        kernel.run(code)
    assert kernel.command({"op": "flush", "timeout_s": 30}) == {"records_pending": 0}
    stored = protocol_service.stored_cells(run_id)
    assert [cell["code"] for cell in stored] == codes
    assert [cell["seq"] for cell in stored] == [1, 2, 3, 4, 5, 6]
    posted = [cell["seq"] for batch in protocol_service.cell_posts for cell in batch]
    assert posted == sorted(posted)  # in order, batch after batch
    assert kernel.command({"op": "status"})["records_pending"] == 0


def test_a_refused_record_is_sent_again_with_the_next_batch(start_kernel, protocol_service):
    kernel = start_kernel(env=_service_env(protocol_service))
    run_id = kernel.command({"op": "status"})["run_id"]
    # A long back-off, so that only the next cell (not the retry timer) can send the record again.
    kernel.value("setattr(__import__('jupyterhub_resume_agent')._agent.uploader, '_retry_after_s', 120.0)")
    protocol_service.fail_cell_posts = 1
    kernel.run("first = 1")
    wait_until(lambda: protocol_service.fail_cell_posts == 0, message="the refused post")
    assert kernel.command({"op": "status"})["records_pending"] == 1
    kernel.run("second = 2")
    wait_until(lambda: len(protocol_service.stored_cells(run_id)) == 2, message="both records stored")
    assert [[cell["code"] for cell in batch] for batch in protocol_service.cell_posts] == [["first = 1", "second = 2"]]


def test_flush_reports_an_error_when_the_service_refuses_records(start_kernel, protocol_service):
    kernel = start_kernel(env=_service_env(protocol_service))
    protocol_service.fail_cell_posts = 10**6
    kernel.run("refused = 1")
    answer = kernel.command({"op": "flush", "timeout_s": 20})
    assert answer["error"]["type"] == "RESUME_ERR_AGENT_RECORDS_NOT_SENT"
    assert answer["records_pending"] == 1
    assert kernel.run("still_works = 1").reply["status"] == "ok"


def test_checkpoint_uploads_blobs_with_a_grant_and_the_service_agrees_on_the_checksums(start_kernel, protocol_service):
    kernel = start_kernel(env=_service_env(protocol_service))
    for cell in NOTEBOOK:
        kernel.run(cell)
    target = {"kind": "http", "url": protocol_service.blob_url("ck-http"), "grant": protocol_service.grant}
    manifest = kernel.command({"op": "checkpoint", "checkpoint_id": "ck-http", "target": target})
    assert "error" not in manifest, manifest
    assert manifest["groups"]
    for group in manifest["groups"]:
        data = protocol_service.blobs[("ck-http", group["key"])]
        assert len(data) == group["bytes"]
        assert hashlib.sha256(data).hexdigest() == group["sha256"]
    assert all(length is not None for length in protocol_service.blob_put_lengths)  # Content-Length, not chunked

    refused = kernel.command({"op": "checkpoint", "checkpoint_id": "ck-http", "target": {**target, "grant": "wrong"}})
    assert refused["error"]["type"] == "RESUME_ERR_AGENT_SERVICE_STATUS"
    assert "401" in refused["error"]["message"]
    assert "wrong" not in refused["error"]["message"]  # the grant never shows up in messages


def test_a_kernel_restores_a_waiting_checkpoint_before_the_first_cell_and_reports(start_kernel, protocol_service):
    source = start_kernel(env=_service_env(protocol_service))
    for cell in NOTEBOOK:
        source.run(cell)
    target = {"kind": "http", "url": protocol_service.blob_url("ck-start"), "grant": protocol_service.grant}
    manifest = source.command({"op": "checkpoint", "checkpoint_id": "ck-start", "target": target})
    cells = source.command({"op": "history"})["cells"]
    protocol_service.pending_restore = {"checkpoint_id": "ck-start", "manifest": manifest, "cells": cells, "source": target}

    kernel = start_kernel(env=_service_env(protocol_service))
    first = kernel.run("print(total, skipped, next(stream), twice(21), same is labels)")
    assert first.reply["status"] == "ok", first.reply
    assert "jupyterhub-resume restored this notebook's variables from checkpoint ck-start" in first.stdout
    assert "recomputed 1 (stream)" in first.stdout
    assert f"{499999500000} 0 1 42 True" in first.stdout
    assert first.execution_count == manifest["execution_count"]
    second = kernel.run("print('quiet')")
    assert "jupyterhub-resume" not in second.stdout

    run_id = kernel.command({"op": "status"})["run_id"]
    (report_run, report), = protocol_service.reports
    assert report_run == run_id and report["checkpoint_id"] == "ck-start"
    status = {entry["name"]: entry["status"] for entry in report["variables"]}
    assert status == {"np": "imported", "values": "stored", "total": "stored", "labels": "stored", "same": "stored",
                      "stream": "recomputed", "skipped": "stored", "twice": "stored"}
    history = kernel.command({"op": "history"})["cells"]
    assert history[: len(cells)] == cells and history[-1]["code"] == "print('quiet')"
    again = kernel.command({"op": "checkpoint", "checkpoint_id": "ck-again", "target": {**target, "url": protocol_service.blob_url("ck-again")}})
    assert {item["name"] for item in again["variables"]} >= set(status)  # restored names are user variables again


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
