"""A checkpoint given its session's previous one as ``base`` writes only the groups that changed."""

from __future__ import annotations

import pytest

from conftest import run_notebook

NOTEBOOK = [
    "import numpy as np",
    "big = np.arange(2_000_000, dtype=float)",  # 16 MB, never touched again
    "counts = {'a': 1}",
    "read_only = np.ones(3_000_000)",  # 24 MB: too big to hash per cell, so any read counts as a change
    "gen = (i for i in range(5))",  # cannot be stored: never a blob
    "pair = [1, 2]\nsame_pair = pair",
]


def _checkpoint(kernel, checkpoint_id: str, directory, base: dict | None = None) -> dict:
    request = {"op": "checkpoint", "checkpoint_id": checkpoint_id, "target": {"kind": "dir", "path": str(directory)}}
    if base is not None:
        request["base"] = {"checkpoint_id": base["checkpoint_id"], "groups": base["groups"]}
    manifest = kernel.command(request)
    assert "error" not in manifest, manifest
    return manifest


def _group_of(manifest: dict, name: str) -> dict:
    return next(group for group in manifest["groups"] if name in group["names"])


def _written(manifest: dict, directory) -> set[str]:
    """Names whose group this checkpoint wrote itself (a blob file in its own directory)."""
    return {
        name
        for group in manifest["groups"]
        if "stored_in" not in group and (directory / group["key"]).is_file()
        for name in group["names"]
    }


@pytest.fixture(scope="module")
def session(module_kernels, tmp_path_factory):
    kernel = run_notebook(module_kernels.start(), NOTEBOOK)
    root = tmp_path_factory.mktemp("incremental")
    first = _checkpoint(kernel, "ck-1", root / "ck-1")
    for cell in ("counts['b'] = 2", "total = float(read_only.sum())", "fresh = 3"):
        assert kernel.run(cell).reply["status"] == "ok", cell
    second = _checkpoint(kernel, "ck-2", root / "ck-2", base=first)
    assert kernel.run("big[0] = -1.0").reply["status"] == "ok"
    third = _checkpoint(kernel, "ck-3", root / "ck-3", base=second)
    return {"kernel": kernel, "root": root, "first": first, "second": second, "third": third}


def test_the_first_checkpoint_writes_every_stored_group(session):
    first = session["first"]
    assert all("stored_in" not in group for group in first["groups"])
    assert _written(first, session["root"] / "ck-1") == {"big", "counts", "read_only", "pair", "same_pair"}


def test_unchanged_groups_are_referenced_and_changed_ones_written(session):
    first, second = session["first"], session["second"]
    assert _written(second, session["root"] / "ck-2") == {"counts", "total", "fresh"}
    for name in ("big", "pair"):
        group = _group_of(second, name)
        original = _group_of(first, name)
        assert group["stored_in"] == {"checkpoint_id": "ck-1", "key": original["key"]}
        assert (group["bytes"], group["sha256"], group["serializer"]) == (original["bytes"], original["sha256"], original["serializer"])
        assert not (session["root"] / "ck-2" / group["key"]).exists()
    assert sorted(_group_of(second, "pair")["names"]) == ["pair", "same_pair"]


def test_a_variable_only_read_is_compared_by_its_bytes_and_not_written_again(session):
    # The recorder cannot afford to hash 24 MB after every cell, so reading counts as a change;
    # the checkpoint finds the same bytes and references the earlier blob.
    history = session["kernel"].command({"op": "history"})["cells"]
    reading = next(cell for cell in history if cell["code"] == "total = float(read_only.sum())")
    assert "read_only" in reading["modified"]
    group = _group_of(session["second"], "read_only")
    assert group["stored_in"] == {"checkpoint_id": "ck-1", "key": _group_of(session["first"], "read_only")["key"]}


def test_references_point_at_the_checkpoint_that_holds_the_bytes_never_at_another_reference(session):
    third = session["third"]
    assert _written(third, session["root"] / "ck-3") == {"big"}
    assert _group_of(third, "read_only")["stored_in"]["checkpoint_id"] == "ck-1"
    assert _group_of(third, "counts")["stored_in"] == {"checkpoint_id": "ck-2", "key": _group_of(session["second"], "counts")["key"]}
    assert _group_of(third, "big")["sha256"] != _group_of(session["first"], "big")["sha256"]


def test_a_base_this_kernel_never_wrote_is_trusted_only_byte_for_byte(session, tmp_path):
    kernel = session["kernel"]
    base = {"checkpoint_id": "written-elsewhere", "groups": session["third"]["groups"]}
    manifest = _checkpoint(kernel, "ck-foreign", tmp_path, base=base)
    # Nothing changed since ck-3, so every group has the same bytes as there; still each was
    # pickled and hashed before being referenced (no mark of that checkpoint in this kernel).
    assert _written(manifest, tmp_path) == set()
    referenced = {group["stored_in"]["checkpoint_id"] for group in manifest["groups"]}
    assert referenced == {"ck-1", "ck-2", "written-elsewhere"}
    fake = dict(_group_of(session["third"], "counts"), sha256="0" * 64)
    changed_base = {"checkpoint_id": "written-elsewhere", "groups": [fake]}
    manifest = _checkpoint(kernel, "ck-foreign-2", tmp_path / "second", base=changed_base)
    assert "counts" in _written(manifest, tmp_path / "second")


def test_a_malformed_base_is_refused_with_the_field_named(session, tmp_path):
    answer = session["kernel"].command(
        {
            "op": "checkpoint",
            "checkpoint_id": "ck-bad",
            "target": {"kind": "dir", "path": str(tmp_path)},
            "base": {"checkpoint_id": "ck-1", "groups": [{"key": "g0", "names": ["x"], "serializer": "pickle", "bytes": 1, "sha256": "0" * 64, "stored_in": {"checkpoint_id": "ck-0", "key": "Bad Key"}}]},
        }
    )
    assert answer["error"]["type"] == "RESUME_ERR_AGENT_BAD_REQUEST"
    assert "base.groups[0].stored_in" in answer["error"]["message"]
