"""Fingerprints of single values, in-process (no kernel): the unserializable-type table, graph
estimates, byte budgets, unknown links and the conservative joining of ``covariables``.

The kernel tests (test_big_graphs.py) check the same rules end to end through cell records.
"""

from __future__ import annotations

import pickle
import random
import socket
import sys
import threading
import types

import pytest

from conftest import AGENT_PATH

sys.path.insert(0, str(AGENT_PATH))
from jupyterhub_resume_agent import fingerprints  # noqa: E402
from jupyterhub_resume_agent.covariables import CoVariables  # noqa: E402
from jupyterhub_resume_agent.fingerprints import PER_CELL_OBJECT_BUDGET, Fingerprint, FingerprintTaker  # noqa: E402
from jupyterhub_resume_agent.graph_estimate import estimate_graph  # noqa: E402
from jupyterhub_resume_agent.object_links import group_names  # noqa: E402
from jupyterhub_resume_agent.reference_walk import reachable_objects  # noqa: E402
from jupyterhub_resume_agent.unserializable_types import known_unserializable  # noqa: E402


@pytest.fixture
def pickles(monkeypatch) -> list:
    """The pickles fingerprints attempt: ``[(cap, completed)]``."""
    attempts: list = []
    dump = fingerprints._dump

    def counted(value, cap=None):
        attempts.append([cap, False])
        result = dump(value, cap)
        attempts[-1][1] = True
        return result

    monkeypatch.setattr(fingerprints, "_dump", counted)
    return attempts


def _generator():
    yield 1


@pytest.mark.parametrize(
    ("make", "reason", "stored"),
    [
        (_generator, "TypeError: cannot pickle 'generator' object", False),
        (threading.Lock, "TypeError: cannot pickle '_thread.lock' object", True),
        (threading.RLock, "TypeError: cannot pickle '_thread.RLock' object", True),
        (threading.Event, "TypeError: cannot pickle 'threading.Event' object (it holds a lock)", True),
        (socket.socket, "TypeError: cannot pickle 'socket.socket' object (it wraps an operating-system resource)", False),
    ],
)
def test_known_unserializable_types_are_refused_by_type(make, reason, stored, pickles):
    value = make()
    try:
        assert known_unserializable(value) == reason
        fingerprint = FingerprintTaker({}).take(value, hash_large=False)
        assert (fingerprint.serializable, fingerprint.unserializable_reason) == (False, reason)
        assert pickles == []  # no failed pickle attempt
        # A checkpoint's dill saves locks and events (new ones), not generators or sockets.
        assert fingerprint.unstorable_reason == (None if stored else reason)
    finally:
        if isinstance(value, socket.socket):
            value.close()


def test_a_file_open_for_writing_is_refused_and_one_open_for_reading_is_not(tmp_path):
    path = tmp_path / "journal.txt"
    with open(path, "w") as writing:
        assert "is open for writing" in known_unserializable(writing)
    with open(path) as reading:
        assert known_unserializable(reading) is None


def test_subclasses_and_ordinary_values_are_left_to_pickle():
    class Worker(threading.Thread):
        pass

    for value in (Worker(), [1], {"a": 2}, 3, None, types.SimpleNamespace()):
        assert known_unserializable(value) is None


class _Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


#: A notebook class (the estimate enters instances of those only).
_NotebookPoint = type("Point", (), {"__init__": _Point.__init__, "__module__": "__main__"})


def test_estimates_follow_what_pickle_memoizes():
    nested = estimate_graph([[i, i + 1, i + 2] for i in range(200_000)], set())
    assert nested.objects == 200_001 and 2_000_000 < nested.size < 6_000_000
    points = estimate_graph([_NotebookPoint(i, [i]) for i in range(50_000)], set())
    assert points.objects == 150_001  # each instance, its __dict__ and its list
    assert points.notebook_code == (_NotebookPoint,)
    assert estimate_graph(list(range(1_000)), set()).objects == 1  # numbers are written inline
    assert estimate_graph(["s%d" % i for i in range(1_000)], set()).objects == 1_001


def test_an_estimate_finds_a_refused_object_in_a_container_pickle_must_save():
    connection = socket.socket()
    try:
        assert "socket" in estimate_graph([1, [connection]], set()).unserializable_reason
        # What an instance holds is up to its class's pickling: not certain.
        holder = _Point(connection, 0)
        assert estimate_graph([holder], set()).unserializable_reason is None
    finally:
        connection.close()


def test_a_graph_past_the_budget_is_estimated_when_the_cell_that_bound_it_was_seen(pickles):
    value = [[i] for i in range(PER_CELL_OBJECT_BUDGET * 2)]
    fingerprint = FingerprintTaker({}).take(value, hash_large=False, estimate=True)
    assert pickles == []  # a big built-in container is estimated before any pickling
    assert (fingerprint.links_known, fingerprint.size_exact, fingerprint.serializable) == (False, False, True)
    assert fingerprint.digest is None and fingerprint.too_costly_per_cell
    assert fingerprint.link_ids == frozenset({id(value)}) and fingerprint.size > 0


def test_a_big_graph_inside_a_small_container_is_estimated_after_one_frame(pickles):
    value = {"rows": [[i] for i in range(PER_CELL_OBJECT_BUDGET * 2)]}
    fingerprint = FingerprintTaker({}).take(value, hash_large=False, estimate=True)
    assert (fingerprint.links_known, fingerprint.size_exact) == (False, False)
    assert pickles == [[fingerprints.FRAME_BYTES, False]]  # one frame of pickle, then the estimate


def test_the_same_graph_is_measured_in_full_when_no_recorded_cell_explains_it():
    value = [[i] for i in range(PER_CELL_OBJECT_BUDGET * 2)]
    fingerprint = FingerprintTaker({}).take(value, hash_large=False)
    assert (fingerprint.links_known, fingerprint.size_exact) == (True, True)
    assert fingerprint.reached == PER_CELL_OBJECT_BUDGET * 2 + 1 and len(fingerprint.link_ids) == fingerprint.reached


def test_a_graph_the_estimate_does_not_enter_is_stopped_by_the_byte_budget(pickles):
    value = types.SimpleNamespace(items=[f"text {i}" for i in range(200_000)])  # a library object
    estimated = FingerprintTaker({}).take(value, hash_large=False, estimate=True)
    assert pickles == [[fingerprints.FRAME_BYTES, False], [fingerprints.IN_BAND_BUDGET, False]]
    assert (estimated.links_known, estimated.size_exact, estimated.digest) == (False, False, None)
    assert estimated.size >= fingerprints.IN_BAND_BUDGET and estimated.reached > PER_CELL_OBJECT_BUDGET


def test_a_small_value_is_pickled_once_and_exactly(pickles):
    inner = [1, 2]
    value = {"a": inner, "b": "text"}
    fingerprint = FingerprintTaker({}).take(value, hash_large=False, estimate=True)
    assert pickles == [[fingerprints.FRAME_BYTES, True]]
    assert (fingerprint.links_known, fingerprint.size_exact) == (True, True)
    assert fingerprint.link_ids == {id(value), id(inner)}


def test_a_variable_not_measured_after_a_cell_has_unknown_links_unless_it_cannot_hold_objects():
    numpy = pytest.importorskip("numpy")
    taker = FingerprintTaker({})
    cases = [(numpy.zeros(10), True), (bytearray(b"ab"), True), ([1], False), (numpy.array([[1]], dtype=object), False)]
    for value, stays_known in cases:
        old = taker.take(value, hash_large=False)
        assert taker.unmeasured(value, old).links_known is stays_known


def test_a_reference_walk_cut_short_says_so():
    big = [[i] for i in range(100)]
    objects, complete = reachable_objects(big, set(), limit=50)
    assert not complete and len(objects) >= 50
    assert reachable_objects(big, set())[1]


def test_a_walk_cut_short_is_not_walked_again_after_every_cell(monkeypatch):
    rows = [[i] for i in range(PER_CELL_OBJECT_BUDGET * 2)]
    rows_iterator = (row for row in rows)
    first = FingerprintTaker({}).take(rows_iterator, hash_large=False, estimate=True)
    assert (first.serializable, first.links_known) == (False, False)
    assert id(rows) in first.link_ids  # found before the walk stopped
    walks = []
    monkeypatch.setattr(fingerprints, "reachable_objects", lambda *args: walks.append(args) or ([], True))
    again = FingerprintTaker({}).take(rows_iterator, hash_large=False, previous=first, estimate=True)
    assert walks == [] and again.link_ids >= first.link_ids and not again.links_known


def _fingerprint(value_id: int, link_ids, links_known: bool = True) -> Fingerprint:
    return Fingerprint(value_id, frozenset(link_ids), b"digest", True, frozenset(), links_known=links_known)


def test_an_unknown_variable_takes_the_links_of_what_a_cell_touched_and_keeps_them():
    covariables = CoVariables()
    big = _fingerprint(1, {1}, links_known=False)
    covariables.update({"big": big, "item": _fingerprint(2, {2}), "other": _fingerprint(3, {3})})
    # A cell reading big and item (big.append(item)); other is left alone.
    covariables.join_unknown_links({"big", "item"}, {})
    assert covariables.groups_of(["big", "other"]) == [["big", "item"], ["other"]]
    # item rebound elsewhere: big may still hold the old item's object, so it keeps its id.
    covariables.update({"item": _fingerprint(4, {4})})
    covariables.update({"alias": _fingerprint(2, {2})})
    assert covariables.groups_of(["big"]) == [["alias", "big"]]


def test_what_a_deleted_name_reached_before_the_cell_counts_too():
    covariables = CoVariables()
    big = _fingerprint(1, {1}, links_known=False)
    covariables.update({"big": big, "moved": _fingerprint(2, {2}), "keep": _fingerprint(2, {2})})
    before = dict(covariables.entries)
    covariables.update({"moved": None})  # big.append(moved); del moved
    covariables.join_unknown_links({"big", "moved"}, before)
    assert covariables.groups_of(["big"]) == [["big", "keep"]]


def test_known_variables_are_never_joined_by_the_rule():
    covariables = CoVariables()
    covariables.update({"a": _fingerprint(1, {1}), "b": _fingerprint(2, {2})})
    covariables.join_unknown_links({"a", "b"}, {})
    assert covariables.groups_of(["a", "b"]) == [["a"], ["b"]]


def _union_find_groups(names, link_ids):
    """The plain union-find group_names replaced: one id at a time."""
    parent = {name: name for name in names}

    def find(name):
        while parent[name] != name:
            name = parent[name]
        return name

    owner = {}
    for name in names:
        for ident in link_ids[name]:
            other = owner.setdefault(ident, name)
            root_a, root_b = find(name), find(other)
            if root_a != root_b:
                first, second = sorted((root_a, root_b), key=names.index)
                parent[second] = first
    groups = {}
    for name in names:
        groups.setdefault(find(name), []).append(name)
    return list(groups.values())


def test_group_names_groups_as_a_plain_union_find_does():
    rng = random.Random(7)
    for _ in range(200):
        names = [f"v{i}" for i in range(rng.randint(1, 12))]
        link_ids = {name: {rng.randint(0, 15) for _ in range(rng.randint(0, 4))} for name in names}
        assert group_names(names, link_ids) == _union_find_groups(names, link_ids)


def test_pickling_an_instance_does_not_change_a_notebook_class_fingerprint(monkeypatch):
    shape = type("Shape", (), {"__module__": "__main__", "sides": 3, "area": lambda self: 0})
    monkeypatch.setattr(sys.modules["__main__"], "Shape", shape, raising=False)  # pickle finds it by name
    before = FingerprintTaker({}).take(shape)
    pickle.dumps(shape(), protocol=5)  # copyreg caches __slotnames__ on the class
    assert "__slotnames__" in vars(shape)
    after = FingerprintTaker({}).take(shape)
    assert before.digest is not None and after.digest == before.digest
