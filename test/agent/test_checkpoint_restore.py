"""A checkpoint to a directory, restored into a second, fresh kernel, gives back the same state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import checkpoint_to_dir, restore_from_dir, run_notebook

NOTEBOOK = [
    "import numpy as np",
    "import pandas as pd",
    "from os import path",
    "count = 42\ntitle = 'résumé'\nratio = 0.25\nbig_int = 10 ** 30",
    "shared = {'inner': [1, 2, {'deep': 'x'}]}\nnested = {'a': shared, 'list': [shared['inner'], 3]}\nalias = nested",
    "big = np.random.default_rng(7).random(13_107_200)",  # 100 MiB of float64
    "window = big[1000:2000]",
    "frame = pd.DataFrame({'n': np.arange(5), 's': list('abcde'), 'f': np.linspace(0, 1, 5)})",
    "def scale(v, k=2):\n    return v * k * count",
    "class Counter:\n    def __init__(self, start):\n        self.n = start\n    def bump(self):\n        self.n += 1\n        return self.n",
    "counter = Counter(10)\ncounter.bump()",
    "square = lambda v: v * v",
    "notes_path = __import__('os').path.abspath('notes.txt')\nwith open(notes_path, 'w') as written:\n    written.write('original text')",
    "reader = open(notes_path)\nhead_chars = reader.read(4)",
    "squares = (i * i for i in range(100))",
    "first_two = [next(squares), next(squares)]",
    "shared['inner'].append(99)",
    "journal = open(notes_path + '.log', 'a')",
    "scratch = 1",
    "del scratch",
]


@pytest.fixture(scope="module")
def source(module_kernels):
    return run_notebook(module_kernels.start(), NOTEBOOK)


@pytest.fixture(scope="module")
def checkpoint(source, tmp_path_factory):
    taken = checkpoint_to_dir(source, "ck-roundtrip", tmp_path_factory.mktemp("checkpoint") / "blobs")
    # The user edits the file after the checkpoint: a restore must not write it again.
    notes = Path(source.value("notes_path"))
    notes.write_text("edited after the checkpoint")
    return {**taken, "notes": notes}


@pytest.fixture(scope="module")
def restored(module_kernels, checkpoint):
    kernel = module_kernels.start()
    report = restore_from_dir(kernel, checkpoint)
    assert "error" not in report, report
    # The first user cell after the restore, before any test runs its own.
    first_cell = kernel.run("after_restore = count + 1")
    return kernel, report, first_cell


def _how(manifest) -> dict:
    return {item["name"]: item["how"] for item in manifest["variables"]}


def test_manifest_lists_every_variable_once_and_how_it_comes_back(checkpoint):
    manifest = checkpoint["manifest"]
    how = _how(manifest)
    assert len(how) == len(manifest["variables"])
    assert "scratch" not in how
    assert {name for name, kind in how.items() if kind == "import"} == {"np", "pd", "path"}
    assert {item["name"]: item["module"] for item in manifest["imports"]} == {"np": "numpy", "pd": "pandas", "path": "posixpath"}
    recompute = {item["name"]: item for item in manifest["recompute"]}
    assert [(name, item["type"]) for name, item in recompute.items()] == [("squares", "generator"), ("journal", "_io.TextIOWrapper")]
    assert "generator" in recompute["squares"]["reason"]
    assert "open for writing" in recompute["journal"]["reason"]
    assert how["written"] == how["reader"] == "stored"  # file handles are saved as descriptions
    grouped = {frozenset(group["names"]) for group in manifest["groups"]}
    assert frozenset({"shared", "nested", "alias"}) in grouped
    assert frozenset({"big", "window"}) in grouped
    assert frozenset({"Counter", "counter"}) in grouped
    serializers = {name: group["serializer"] for group in manifest["groups"] for name in group["names"]}
    assert serializers["square"] == "dill" and serializers["scale"] == "dill" and serializers["frame"] == "pickle"
    assert manifest["execution_count"] == len(NOTEBOOK) + 1


def test_large_arrays_leave_the_pickle_as_out_of_band_buffers(checkpoint):
    group = next(group for group in checkpoint["manifest"]["groups"] if "big" in group["names"])
    blob = (checkpoint["dir"] / group["key"]).read_bytes()
    assert group["bytes"] == len(blob)
    assert blob[:4] == b"JHRB"
    n_buffers = int.from_bytes(blob[6:10], "little")
    pickle_length = int.from_bytes(blob[10:18], "little")
    assert n_buffers >= 1
    assert pickle_length < 10_000  # 100 MiB of data, yet the pickle itself stays tiny
    assert group["bytes"] >= 13_107_200 * 8


def test_restore_reports_each_variable_and_recomputes_the_generator(restored, checkpoint):
    _, report, _ = restored
    status = {entry["name"]: entry["status"] for entry in report["variables"]}
    assert status.pop("squares") == status.pop("journal") == "recomputed"
    assert {name for name, value in status.items() if value == "imported"} == {"np", "pd", "path"}
    assert all(value in ("stored", "imported") for value in status.values()), report
    assert set(status) | {"squares", "journal"} == set(_how(checkpoint["manifest"]))
    assert report["checkpoint_id"] == "ck-roundtrip"


def test_restored_values_equal_the_originals(restored):
    kernel, _, _ = restored
    assert kernel.value("[count, title, ratio, big_int == 10 ** 30]") == [42, "résumé", 0.25, True]
    assert kernel.value("shared['inner']") == [1, 2, {"deep": "x"}, 99]  # appended once, not again by the re-run
    assert kernel.value("first_two") == [0, 1]
    assert kernel.value("frame.equals(pd.DataFrame({'n': np.arange(5), 's': list('abcde'), 'f': np.linspace(0, 1, 5)}))")
    assert kernel.value("bool((big == np.random.default_rng(7).random(13_107_200)).all())")
    assert kernel.value("path is __import__('os').path")


def test_shared_references_stay_shared(restored):
    kernel, _, _ = restored
    assert kernel.value("[alias is nested, nested['a'] is shared, nested['list'][0] is shared['inner']]") == [True, True, True]
    assert kernel.value("bool(np.shares_memory(window, big))")
    kernel.run("big[1000] = -1.0")
    assert kernel.value("float(window[0])") == -1.0


def test_functions_classes_and_lambdas_work_after_restore(restored):
    kernel, _, _ = restored
    assert kernel.value("scale(3)") == 3 * 2 * 42  # the function sees the restored globals
    assert kernel.value("[isinstance(counter, Counter), counter.n]") == [True, 11]
    assert kernel.value("square(7)") == 49


def test_the_partially_consumed_generator_continues_where_it_was(restored, source):
    kernel, _, _ = restored
    assert kernel.value("next(squares)") == source.value("next(squares)") == 4


def test_file_handles_come_back_without_writing_to_the_file(restored, checkpoint):
    kernel, _, _ = restored
    notes = checkpoint["notes"]
    assert notes.read_text() == "edited after the checkpoint"  # the closed 'w' handle did not truncate it
    assert kernel.value("[written.closed, written.name == notes_path, written.mode]") == [True, True, "w"]
    assert kernel.value("[reader.closed, reader.read()]") == [False, "ed after the checkpoint"]  # from position 4
    assert kernel.value("journal.closed") is False  # rebuilt by re-running its cell (append mode)


def test_a_deleted_name_stays_deleted(restored):
    kernel, _, _ = restored
    assert kernel.value("'scratch' in globals()") is False


def test_the_execution_count_continues_and_restored_names_are_user_variables(restored, checkpoint):
    kernel, _, first_cell = restored
    assert first_cell.execution_count == checkpoint["manifest"]["execution_count"]
    assert first_cell.execute_input_count == checkpoint["manifest"]["execution_count"]
    names = {item["name"] for item in kernel.command({"op": "describe"})["variables"]}
    assert {"count", "big", "squares", "np"} <= names


def test_history_after_restore_holds_the_checkpoints_cells_then_new_ones(restored, checkpoint):
    kernel, _, _ = restored
    kernel.run("later = 1")
    cells = kernel.command({"op": "history"})["cells"]
    assert cells[: len(checkpoint["cells"])] == checkpoint["cells"]
    assert cells[-1]["code"] == "later = 1"


def test_fingerprints_and_aliases_match_between_the_two_kernels(module_kernels, checkpoint):
    kernel = module_kernels.start()
    restore_from_dir(kernel, checkpoint)
    before = {item["name"]: item for item in checkpoint["description"]["variables"]}
    after = {item["name"]: item for item in kernel.command({"op": "describe"})["variables"]}
    assert set(before) == set(after)
    for name, item in before.items():
        assert after[name]["type"] == item["type"], name
        assert after[name]["fingerprint"] == item["fingerprint"], name
    assert before["squares"]["fingerprint"] is None
    assert before["written"]["fingerprint"] is not None
    assert before["big"]["fingerprint"] is not None and before["frame"]["fingerprint"] is not None
    assert sorted(map(sorted, kernel.command({"op": "describe"})["aliases"])) == sorted(map(sorted, checkpoint["description"]["aliases"]))


def test_a_corrupted_or_missing_blob_fails_only_its_own_variables(module_kernels, checkpoint, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint["dir"], damaged)
    groups = {name: group for group in checkpoint["manifest"]["groups"] for name in group["names"]}
    blob = damaged / groups["frame"]["key"]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    (damaged / groups["square"]["key"]).unlink()

    kernel = module_kernels.start()
    report = kernel.command(
        {"op": "restore", "manifest": checkpoint["manifest"], "cells": checkpoint["cells"], "source": {"kind": "dir", "path": str(damaged)}}
    )
    status = {entry["name"]: entry for entry in report["variables"]}
    assert status["frame"]["status"] == "failed" and "sha256" in status["frame"]["error"]
    assert status["square"]["status"] == "failed" and "missing" in status["square"]["error"]
    others = {name: entry["status"] for name, entry in status.items() if name not in ("frame", "square")}
    assert set(others.values()) <= {"stored", "imported", "recomputed"}, others
    assert kernel.value("['frame' in globals(), 'square' in globals(), count]") == [False, False, 42]


def test_the_plan_can_ask_for_variables_to_be_recomputed_instead_of_stored(source, tmp_path):
    manifest = source.command(
        {"op": "checkpoint", "checkpoint_id": "ck-plan", "target": {"kind": "dir", "path": str(tmp_path)}, "recompute": ["title", "shared"]}
    )
    how = _how(manifest)
    assert how["title"] == "recompute"
    assert how["shared"] == how["nested"] == how["alias"] == "recompute"  # linked to a recomputed one
    assert how["count"] == "stored"


def test_the_first_cell_after_a_restore_knows_what_it_read(restored):
    kernel, _, _ = restored
    cells = kernel.command({"op": "history"})["cells"]
    cell = [c for c in cells if c["code"] == "after_restore = count + 1"][-1]
    assert (cell["read"], cell["read_all"], cell["created"], cell["modified"]) == (["count"], False, ["after_restore"], [])
    assert cell["effects_known"] is True
