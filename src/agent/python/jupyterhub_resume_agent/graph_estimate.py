"""A cheap estimate of how many objects a value's pickle would memoize, taken before pickling it.

A fingerprint pickles the value and goes through every object the pickler memoized, one to two
microseconds an object all told: a list of 200,000 small lists costs half a second, twice what
the cell that built it took. ``estimate_graph`` looks at a sample instead. A container with more
than ``SAMPLE`` elements is represented by about ``SAMPLE`` of them (evenly spaced in lists and
tuples, the first ones of dicts and sets), and what they hold is scaled up by its length: 200,000
lists of three ints are estimated from 16 of them, in about 50 microseconds.

The walk enters built-in containers (``list``, ``tuple``, ``dict``, ``set``, ``frozenset``),
instances of notebook classes and numpy arrays of objects: where big graphs of small objects are
built in notebooks. Any other object counts as one, unentered: a library object's pickle is up to
its own reduction, and walking its internals would cost as much as pickling it (the fingerprint's
pickle has a byte budget of its own for those). The walk never runs user code (exact built-in
types are measured with ``len``, slicing and iteration; instances with ``gc.get_referents``), never
enters modules, classes, module dictionaries or the notebook namespace, and gives up (``None``:
no estimate, pickle it) past ``MAX_VISITS`` objects or ``MAX_DEPTH`` levels.

Counts follow pickle: ints, floats, bools and ``None`` are written inline (no memo entry);
strings, bytes, containers and instances (with their ``__dict__``) are memoized once each, and an
object met twice counts once. Sizes are rough: a float is 9 bytes, a string its length plus 5, an
array its buffer. An estimate can be far off either way (a sample misses what only unsampled
elements hold); it only decides whether a value is pickled at all, and a value that is not is
treated conservatively (see ``fingerprints``). On the way the walk notes the notebook code it saw
and the first object pickle is known to refuse (``unserializable_types``) among the items of
built-in containers, which pickle must save (the value itself is for the caller to check), and
the first such object dill cannot save either.
"""

from __future__ import annotations

import gc
import sys
import types
from itertools import islice
from typing import NamedTuple

from .reference_walk import module_dict_ids
from .unserializable_types import known_unserializable, known_unstorable

#: Elements of a big container that stand for all of them.
SAMPLE = 16
#: Objects visited before giving up (about a millisecond).
MAX_VISITS = 2_000
MAX_DEPTH = 40

#: Written inline by pickle: never in its memo. (type → rough pickled bytes)
_INLINE_SIZES = {int: 5, float: 9, bool: 1, type(None): 1, complex: 20}
_CONTAINERS = (list, tuple, dict, set, frozenset)


class GraphEstimate(NamedTuple):
    """What pickling a value would take, estimated from a sample."""

    #: Objects pickle would memoize (what fingerprinting the value would cost).
    objects: int
    #: Bytes pickle would write, out-of-band buffers included.
    size: int
    #: The notebook functions and classes seen in the sample (and classes of notebook instances).
    notebook_code: tuple
    #: Why pickle cannot save an object the sample found where pickle must save it; ``None`` when none was seen.
    unserializable_reason: str | None
    #: Why a checkpoint (pickle, then dill) cannot save such an object; ``None`` when none was seen.
    unstorable_reason: str | None = None


class _GaveUp(Exception):
    """The graph is too rich to estimate quickly."""


class _Walk:
    """One estimate: the objects met so far (as pickle's memo would), and what was seen on the way."""

    def __init__(self, skip_ids: set[int]) -> None:
        self.skip_ids = skip_ids
        self.seen: set[int] = set()
        self.visits = 0
        self.notebook_code: dict = {}  # an ordered set
        self.unserializable_reason: str | None = None
        self.unstorable_reason: str | None = None
        self.module_dicts: set[int] | None = None
        self.numpy = sys.modules.get("numpy")

    def visit(self, obj, depth: int, must_save: bool) -> tuple[float, float]:
        """(objects, bytes) pickling ``obj`` would add, estimated.

        :param must_save: whether pickle cannot avoid saving ``obj`` (the value itself, items of
            built-in containers it must save): only then does a refused type make it fail.
        """
        kind = type(obj)
        inline = _INLINE_SIZES.get(kind)
        if inline is not None:
            return 0, inline
        ident = id(obj)
        if ident in self.seen:
            return 0, 2  # a memo reference
        self.seen.add(ident)
        if kind is str or kind is bytes or kind is bytearray:
            return 1, len(obj) + 5
        if kind is types.CodeType:
            return 0, 10  # fingerprints save a code object's id, nothing of it
        self.visits += 1
        if self.visits > MAX_VISITS or depth > MAX_DEPTH:
            raise _GaveUp
        if must_save and depth and self.unstorable_reason is None:  # the value itself: see the caller
            refused = known_unserializable(obj)
            if refused is not None:  # what dill cannot save, pickle cannot either
                self.unserializable_reason = self.unserializable_reason or refused
                self.unstorable_reason = known_unstorable(obj)
        if kind in _CONTAINERS:
            return self._container(obj, kind, depth, must_save)
        if self.numpy is not None and kind is self.numpy.ndarray:
            return self._array(obj, depth, must_save)
        if kind.__module__ == "__main__" and not isinstance(obj, type):
            self._note_code(obj)  # an instance of a notebook class: its methods may run
            return self._instance(obj, kind, depth)
        if kind is types.FunctionType or isinstance(obj, type):
            self._note_code(obj)  # notebook code is pickled by value, but it is small
        return 1, 30

    def _scaled(self, items: list, total: int, depth: int, must_save: bool) -> tuple[float, float]:
        sizes = list(map(_INLINE_SIZES.get, map(type, items)))
        if None not in sizes:  # only numbers: at C speed
            objects, size = 0.0, float(sum(sizes))
        else:
            objects, size = self._visit_items(items, depth, must_save)
        if items and total > len(items):
            scale = total / len(items)
            objects, size = objects * scale, size * scale
        return objects, size

    def _visit_items(self, items: list, depth: int, must_save: bool) -> tuple[float, float]:
        objects = size = 0.0
        seen = self.seen
        for item in items:
            # Most items of big containers are numbers or strings: no call for them.
            kind = type(item)
            inline = _INLINE_SIZES.get(kind)
            if inline is not None:
                size += inline
                continue
            if kind is str:
                if id(item) in seen:
                    size += 2
                else:
                    seen.add(id(item))
                    objects += 1
                    size += len(item) + 5
                continue
            more, nbytes = self.visit(item, depth + 1, must_save)
            objects += more
            size += nbytes
        return objects, size

    def _container(self, obj, kind: type, depth: int, must_save: bool) -> tuple[float, float]:
        total = len(obj)
        if total <= SAMPLE:
            items = list(obj.items()) if kind is dict else list(obj)
        elif kind is list or kind is tuple:
            items = obj[:: total // SAMPLE]
        else:
            items = list(islice(obj.items() if kind is dict else obj, SAMPLE))
        if kind is dict:
            total *= 2
            items = [part for pair in items for part in pair]
        objects, size = self._scaled(items, total, depth, must_save)
        return 1 + objects, 3 + size

    def _array(self, array, depth: int, must_save: bool) -> tuple[float, float]:
        if not array.dtype.hasobject:
            return 1, array.nbytes + 120
        flat = array.ravel()
        step = max(1, flat.size // SAMPLE)
        objects, size = self._scaled(list(flat[::step]), flat.size, depth, must_save)
        return 1 + objects, 120 + size

    def _instance(self, obj, kind: type, depth: int) -> tuple[float, float]:
        found = []
        for child in gc.get_referents(obj):
            if isinstance(child, type) or id(child) in self.skip_ids:
                continue
            if type(child) is dict:
                if self.module_dicts is None:
                    self.module_dicts = module_dict_ids()
                if id(child) in self.module_dicts:
                    continue
            found.append(child)
        total = len(found)
        if total > SAMPLE:
            found = found[:: total // SAMPLE]
        # What pickle saves of an instance is up to its class: nothing found here is certain.
        objects, size = self._scaled(found, total, depth, must_save=False)
        has_dict = 1 if kind.__dictoffset__ else 0  # pickle saves the instance and its __dict__
        return 1 + has_dict + objects, 30 + size

    def _note_code(self, obj) -> None:
        """Notes ``obj`` (notebook code), or the class of ``obj`` (an instance of a notebook class)."""
        owner = obj if isinstance(obj, type) or type(obj) is types.FunctionType else type(obj)
        if getattr(owner, "__module__", None) == "__main__":
            self.notebook_code[owner] = None


def is_big_container(value: object) -> bool:
    """Whether ``value`` is a built-in container of more than ``SAMPLE`` items: how big graphs look."""
    return type(value) in _CONTAINERS and len(value) > SAMPLE


def estimate_graph(value: object, skip_ids: set[int]) -> GraphEstimate | None:
    """What pickling ``value`` would take, from a sample of its objects; never raises.

    :param value: any object.
    :param skip_ids: ids never entered (the notebook namespace, ``builtins.__dict__``).
    :returns: the estimate, or ``None`` when the graph is too rich to estimate quickly.
    """
    walk = _Walk(skip_ids)
    try:
        objects, size = walk.visit(value, 0, must_save=True)
    except Exception:  # noqa: BLE001 - too rich (_GaveUp), too deep, or a broken object: pickle decides
        return None
    return GraphEstimate(
        round(objects), round(size), tuple(walk.notebook_code), walk.unserializable_reason, walk.unstorable_reason
    )
