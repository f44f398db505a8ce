"""The cost facts of a cell record's groups (protocol "Dependency fields", ``group_costs``), in a real kernel."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def kernel(module_kernels):
    session = module_kernels.start()
    session.run("import numpy as np\nimport socket")
    return session


def _costs(kernel, code: str) -> list[tuple[list[str], dict]]:
    """Runs a cell and pairs each group its record reports with that group's cost facts."""
    assert kernel.run(code).reply["status"] == "ok", code
    record = kernel.command({"op": "history"})["cells"][-1]
    assert record["code"] == code
    assert len(record["group_costs"]) == len(record["groups"])
    return list(zip(record["groups"], record["group_costs"]))


def test_an_array_of_a_million_floats_has_its_exact_size(kernel):
    [(group, cost)] = _costs(kernel, "array_a = np.zeros(1_000_000)")
    assert group == ["array_a"]
    assert cost["bytes"] >= 8_000_000 and cost["bytes_exact"] is True
    assert (cost["serializable"], cost["unserializable"]) == (True, [])


def test_two_names_for_one_object_count_it_once_and_stay_exact(kernel):
    [(_, alone)] = _costs(kernel, "base_b = np.ones(1_000_000)")
    [(group, both)] = _costs(kernel, "alias_b = base_b")
    assert group == ["alias_b", "base_b"]
    assert both["bytes"] == alone["bytes"] and both["bytes_exact"] is True


def test_objects_sharing_state_sum_to_an_estimate(kernel):
    [(_, inner)] = _costs(kernel, "inner_c = list(range(1000))")
    [(group, cost)] = _costs(kernel, "outer_c = [inner_c]")
    assert group == ["inner_c", "outer_c"]
    # outer_c's pickle holds inner_c's list too: the sum counts it twice, an over-estimate.
    assert cost["bytes"] > 2 * inner["bytes"] and cost["bytes_exact"] is False


def test_an_array_too_big_to_fingerprint_per_cell_has_an_estimated_size(kernel):
    # 20 MB is past fingerprints.LAZY_HASH_FROM: never fingerprinted again while bound, so an
    # in-place change could make its size stale.
    [(_, cost)] = _costs(kernel, "big_d = np.zeros(2_500_000)")
    assert cost["bytes"] >= 20_000_000 and cost["bytes_exact"] is False


def test_a_generator_makes_its_group_unserializable_in_every_later_record_of_the_group(kernel):
    [(group, cost)] = _costs(kernel, "nums_e = [1, 2, 3]\ngen_e = (n for n in nums_e)")
    assert group == ["gen_e", "nums_e"]
    assert cost["serializable"] is False
    [entry] = cost["unserializable"]
    assert entry["name"] == "gen_e" and "generator" in entry["reason"]
    # A cell that never names the generator still reports its group, and the group is still unserializable.
    [(group, cost)] = _costs(kernel, "nums_e.append(4)")
    assert group == ["gen_e", "nums_e"]
    assert cost["serializable"] is False and [u["name"] for u in cost["unserializable"]] == ["gen_e"]
    # Other groups are not affected.
    [(group, cost)] = _costs(kernel, "other_e = [5]")
    assert (group, cost["serializable"]) == (["other_e"], True)


def test_a_list_holding_an_open_socket_is_unserializable(kernel):
    [(group, cost)] = _costs(kernel, "connections_f = [socket.socket()]")
    assert group == ["connections_f"]
    assert cost["serializable"] is False
    [entry] = cost["unserializable"]
    assert entry["name"] == "connections_f" and "socket" in entry["reason"]
    kernel.run("connections_f[0].close()")


def test_every_record_has_one_cost_entry_per_group(kernel):
    cells = kernel.command({"op": "history"})["cells"]
    assert cells
    for cell in cells:
        assert len(cell["group_costs"]) == len(cell["groups"]), cell["code"]
