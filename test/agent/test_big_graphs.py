"""Variables too big to fingerprint after every cell, in a real kernel: what the cell records say.

A graph past ``fingerprints.PER_CELL_OBJECT_BUDGET`` objects (or ``IN_BAND_BUDGET`` pickle bytes)
bound by a cell is estimated from a sample instead of pickled, so its links are unknown; a
variable already too big is not measured again after a cell that reads it. Both are joined
conservatively (``covariables``): with every variable a cell that reads or changes them reads,
binds or changes. These cases would be false negatives without that rule.
"""

from __future__ import annotations

import pytest

DEPENDENCIES = "__import__('jupyterhub_resume_agent')._agent.recorder.dependencies"


@pytest.fixture(scope="module")
def kernel(module_kernels):
    return module_kernels.start()


def _run(kernel, code: str) -> dict:
    reply = kernel.run(code).reply
    assert reply["status"] == "ok", (code, reply)
    record = kernel.command({"op": "history"})["cells"][-1]
    assert record["code"] == code
    return record


def _entry(kernel, name: str) -> dict:
    """The cached fingerprint facts of one variable."""
    fields = ("links_known", "size_exact", "serializable", "too_costly_per_cell", "size", "reached", "unserializable_reason")
    expression = f"{DEPENDENCIES}.covariables.entries[{name!r}]"
    return kernel.value("{" + ", ".join(f"{field!r}: {expression}.{field}" for field in fields) + "}")


def test_a_big_graph_is_estimated_not_pickled_when_a_cell_binds_it(kernel):
    _run(kernel, "nested_a = [[i, i + 1, i + 2] for i in range(200_000)]")
    assert kernel.value(f"{DEPENDENCIES}.last_hashed_bytes") == 0
    entry = _entry(kernel, "nested_a")
    assert (entry["links_known"], entry["size_exact"], entry["serializable"]) == (False, False, True)
    assert entry["too_costly_per_cell"] is True
    # The estimate is in the right range (the real pickle: 200,001 objects, 3.4 MB).
    assert 100_000 < entry["reached"] < 400_000 and 1_000_000 < entry["size"] < 10_000_000


def test_a_slice_of_an_estimated_graph_joins_its_group_and_changes_through_it_count(kernel):
    _run(kernel, "nested_b = [[i, i + 1, i + 2] for i in range(200_000)]")
    record = _run(kernel, "head_b = nested_b[:100]")
    assert record["groups"] == [["head_b", "nested_b"]]
    # head_b's lists are nested_b's: changing one through head_b changes nested_b.
    record = _run(kernel, "head_b[0][0] = 9")
    assert (record["read"], record["modified"]) == (["head_b"], ["head_b", "nested_b"])
    assert kernel.value("nested_b[0][0]") == 9


def test_a_big_variable_that_takes_in_another_ones_object_joins_its_group(kernel):
    _run(kernel, "item_c = [1]\nbig_c = [[i] for i in range(50_000)]")
    assert _entry(kernel, "big_c")["links_known"] is False
    record = _run(kernel, "big_c.append(item_c)")
    assert (record["modified"], record["groups"]) == (["big_c"], [["big_c", "item_c"]])
    # big_c is not measured after a cell (too costly), but it now holds item_c: a change to
    # item_c is a change to big_c.
    assert _run(kernel, "item_c.append(2)")["modified"] == ["big_c", "item_c"]


def test_an_object_a_cell_reads_into_a_big_graph_it_binds_links_them(kernel):
    _run(kernel, "inner_d = [0]")
    record = _run(kernel, "big_d = [inner_d] * 30_000 + [[i] for i in range(30_000)]")
    assert _entry(kernel, "big_d")["links_known"] is False  # estimated: its links are not known
    assert record["groups"] == [["big_d", "inner_d"]]
    assert _run(kernel, "inner_d.append(1)")["modified"] == ["big_d", "inner_d"]


def test_an_object_moved_into_a_big_graph_under_a_name_the_cell_deletes_still_links(kernel):
    _run(kernel, "moved_e = [5]\nkeep_e = moved_e\nbig_e = [[i] for i in range(30_000)]")
    assert _entry(kernel, "big_e")["links_known"] is False
    record = _run(kernel, "big_e.append(moved_e)\ndel moved_e")
    assert record["groups"] == [["big_e", "keep_e"]]
    assert _run(kernel, "keep_e.append(6)")["modified"] == ["big_e", "keep_e"]


def test_a_library_object_holding_a_big_graph_is_stopped_by_the_byte_budget(kernel):
    # The estimate does not enter library objects: the pickle stops at IN_BAND_BUDGET instead.
    _run(kernel, "import pandas as pd_f")
    _run(kernel, "frame_f = pd_f.DataFrame({'s': [f'text {i}' for i in range(200_000)]})")
    assert kernel.value(f"{DEPENDENCIES}.last_hashed_bytes") == 0
    entry = _entry(kernel, "frame_f")
    assert (entry["links_known"], entry["size_exact"], entry["too_costly_per_cell"]) == (False, False, True)
    assert entry["size"] >= 1 << 20
    assert _run(kernel, "count_f = len(frame_f)")["modified"] == ["frame_f"]


def test_a_known_unserializable_type_is_recognised_without_pickling(kernel):
    _run(kernel, "import threading as threading_g\nlock_g = threading_g.Lock()")
    entry = _entry(kernel, "lock_g")
    assert entry["serializable"] is False
    assert entry["unserializable_reason"] == "TypeError: cannot pickle '_thread.lock' object"
    assert _run(kernel, "held_g = lock_g.locked()")["modified"] == ["lock_g"]


def test_a_small_value_keeps_exact_links_and_size(kernel):
    _run(kernel, "small_h = [[i] for i in range(100)]")
    entry = _entry(kernel, "small_h")
    assert (entry["links_known"], entry["size_exact"], entry["too_costly_per_cell"]) == (True, True, False)
    assert entry["reached"] == 101


def test_a_big_variable_measured_in_full_still_joins_what_a_cell_puts_into_it(start_kernel):
    # Bound before the agent was loaded: no recorded cell explains what it shares, so it is
    # pickled in full (exact links), then too costly to measure again after a cell.
    from conftest import AGENT_PATH

    kernel = start_kernel(python_path=[str(AGENT_PATH)], with_agent=False)
    kernel.run("big_i = [[i] for i in range(30_000)]\nitem_i = [1]")
    kernel.run("%load_ext jupyterhub_resume_agent")
    record = _run(kernel, "big_i.append(item_i)")
    assert _entry(kernel, "big_i")["size_exact"] is True  # measured in full at the first cell
    assert (record["modified"], record["groups"]) == (["big_i"], [["big_i", "item_i"]])
    assert _run(kernel, "item_i.append(2)")["modified"] == ["big_i", "item_i"]


def test_a_big_numeric_array_never_joins_what_a_cell_reading_it_binds(kernel):
    # An array of numbers cannot come to hold another object: no conservative join for it.
    _run(kernel, "import numpy as np_j\narray_j = np_j.zeros(4_000_000)")
    record = _run(kernel, "head_j = array_j[:10].copy()")
    assert (record["modified"], record["groups"]) == (["array_j"], [["array_j"], ["head_j"]])
