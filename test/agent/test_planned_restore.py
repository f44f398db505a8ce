"""A restore that follows the service's plan re-runs only the planned cells, binds stored groups
where the history last changed them, and rebuilds a group whose blob cannot be loaded."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="module")
def source(module_kernels, tmp_path_factory):
    counter = tmp_path_factory.mktemp("side-effects") / "runs.txt"
    kernel = module_kernels.start()
    cells = [
        "import numpy as np",
        "big = np.arange(1_000_000)",
        "slow = 41",
        "slow += 1",
        "total = int(big.sum()) + slow",
        "print('noise')\nlog = []",
        "log.append(total)",
        f"open({str(counter)!r}, 'a').write('x')",
        "flaky = 1\nraise ValueError('boom')",
    ]
    for cell in cells:
        kernel.run(cell)
    return kernel, counter


@pytest.fixture(scope="module")
def checkpoint(source, tmp_path_factory):
    kernel, _ = source
    directory = tmp_path_factory.mktemp("planned") / "blobs"
    manifest = kernel.command(
        {"op": "checkpoint", "checkpoint_id": "ck-plan", "target": {"kind": "dir", "path": str(directory)}, "recompute": ["big", "flaky"]}
    )
    assert "error" not in manifest, manifest
    cells = kernel.command({"op": "history"})["cells"]
    return {"manifest": manifest, "cells": cells, "dir": directory}


def _index(cells: list[dict], code: str) -> int:
    return next(i for i, cell in enumerate(cells) if cell["code"] == code)


def _plan(checkpoint: dict, **fallback) -> dict:
    """The plan the service would send: re-run the producers of big and flaky; bind each group after its last change."""
    cells = checkpoint["cells"]
    last_change = {}
    for index, cell in enumerate(cells):
        for name in cell["created"] + cell["rebound"] + cell["modified"]:
            last_change[name] = index
    groups = checkpoint["manifest"]["groups"]
    return {
        "rerun": [_index(cells, "big = np.arange(1_000_000)"), _index(cells, "flaky = 1\nraise ValueError('boom')")],
        "load_after": {group["key"]: max(last_change.get(name, -1) for name in group["names"]) for group in groups},
        "fallback": {key: indices for key, indices in fallback.items()},
    }


def _restore(module_kernels, checkpoint, directory, plan):
    kernel = module_kernels.start()
    report = kernel.command(
        {"op": "restore", "manifest": checkpoint["manifest"], "cells": checkpoint["cells"], "source": {"kind": "dir", "path": str(directory)}, "plan": plan}
    )
    assert "error" not in report, report
    return kernel, report


def test_only_planned_cells_run_and_every_value_comes_back(module_kernels, source, checkpoint):
    _, counter = source
    runs_before = counter.read_text()
    kernel, report = _restore(module_kernels, checkpoint, checkpoint["dir"], _plan(checkpoint))
    status = {entry["name"]: entry["status"] for entry in report["variables"]}
    assert status == {"np": "imported", "big": "recomputed", "slow": "stored", "total": "stored", "log": "stored", "flaky": "recomputed"}
    assert kernel.value("[int(big.sum()), slow, total, log, flaky]") == [499999500000, 42, 499999500042, [499999500042], 1]
    # The side-effect cell was not in the plan: it did not run again.
    assert counter.read_text() == runs_before
    cells = checkpoint["cells"]
    assert report["rerun"] == [
        {"index": _index(cells, "big = np.arange(1_000_000)"), "error": None},
        {"index": _index(cells, "flaky = 1\nraise ValueError('boom')"), "error": "ValueError: boom"},
    ]


def test_a_group_that_cannot_be_loaded_is_rebuilt_by_its_fallback_cells(module_kernels, checkpoint, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint["dir"], damaged)
    log_group = next(group for group in checkpoint["manifest"]["groups"] if "log" in group["names"])
    (damaged / log_group["key"]).unlink()
    cells = checkpoint["cells"]
    fallback = {log_group["key"]: [_index(cells, "print('noise')\nlog = []"), _index(cells, "log.append(total)")]}
    kernel, report = _restore(module_kernels, checkpoint, damaged, _plan(checkpoint, **fallback))
    entry = next(entry for entry in report["variables"] if entry["name"] == "log")
    assert entry["status"] == "recomputed"
    assert "loading it failed" in entry["error"] and "rebuilt it" in entry["error"]
    assert kernel.value("log") == [499999500042]


def test_without_a_fallback_the_group_fails_alone(module_kernels, checkpoint, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint["dir"], damaged)
    log_group = next(group for group in checkpoint["manifest"]["groups"] if "log" in group["names"])
    (damaged / log_group["key"]).unlink()
    kernel, report = _restore(module_kernels, checkpoint, damaged, _plan(checkpoint))
    status = {entry["name"]: entry["status"] for entry in report["variables"]}
    assert status["log"] == "failed" and status["total"] == "stored"
    assert kernel.value("'log' in globals()") is False


def test_a_malformed_plan_is_refused_with_the_field_named(module_kernels, checkpoint):
    kernel = module_kernels.start()
    answer = kernel.command(
        {
            "op": "restore",
            "manifest": checkpoint["manifest"],
            "cells": checkpoint["cells"],
            "source": {"kind": "dir", "path": str(checkpoint["dir"])},
            "plan": {"rerun": ["one"], "load_after": {}, "fallback": {}},
        }
    )
    assert answer["error"]["type"] == "RESUME_ERR_AGENT_BAD_REQUEST"
    assert "plan.rerun" in answer["error"]["message"]
