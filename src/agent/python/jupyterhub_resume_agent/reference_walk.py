"""Objects reachable from a value that pickle cannot walk (a generator, a lock, a socket ...).

Pickle gives up at the first object it cannot save, so its memo says little about what an
unserializable value reaches. ``gc.get_referents`` follows the real references instead: a
generator reaches its frame's locals (``(i for i in l1)`` reaches ``l1`` through its iterator),
so it lands in ``l1``'s co-variable group and is treated as changed when ``l1`` changes.

The walk never enters modules, classes, module dictionaries or the notebook namespace (every
function reaches those through ``__globals__``), and stops after ``limit`` objects: it then says
it is incomplete, and the caller must treat the value's links as unknown.
"""

from __future__ import annotations

import gc
import sys
import types
from collections import deque

_LEAF_TYPES = (str, bytes, int, float, complex, bool, type(None), types.CodeType, types.ModuleType, type)


_module_dicts: tuple[int, set[int]] = (-1, set())


def module_dict_ids() -> set[int]:
    """``id()``s of every loaded module's ``__dict__`` (walks never enter them).

    Cached while the number of loaded modules stays the same (going through a thousand modules
    costs a tenth of a millisecond); a module replaced in between is merely entered, which finds
    more than needed, never less.
    """
    global _module_dicts
    count, ids = _module_dicts
    if count != len(sys.modules):
        modules = list(sys.modules.values())
        ids = set()
        for module in modules:
            namespace = getattr(module, "__dict__", None)
            if type(namespace) is dict:
                ids.add(id(namespace))
        _module_dicts = (len(modules), ids)
    return ids


def _referents(obj) -> list:
    """What ``obj`` refers to, as the garbage collector sees it; a function's globals left out."""
    if type(obj) is types.FunctionType:
        # Not ``gc.get_referents``: that includes ``__globals__`` (a whole module, or the namespace).
        found = [obj.__defaults__, obj.__kwdefaults__, obj.__dict__, obj.__code__]
        found.extend(obj.__closure__ or ())
        return [item for item in found if item is not None]
    return gc.get_referents(obj)


def reachable_objects(value: object, skip_ids: set[int], limit: int = 20_000) -> tuple[list, bool]:
    """``value`` and the objects it reaches through real references, breadth first.

    :param value: any object.
    :param skip_ids: ids never entered (the notebook namespace, ``builtins.__dict__``).
    :param limit: most objects returned (the walk is part of a cell's overhead).
    :returns: the objects, and whether that is all of them (``False``: the walk hit ``limit``).
    """
    module_dicts: set[int] | None = None
    seen = {id(value)}
    found = [value]
    queue = deque([value])
    while queue and len(found) < limit:
        obj = queue.popleft()
        if isinstance(obj, _LEAF_TYPES):
            continue  # found, but not entered
        for child in _referents(obj):
            ident = id(child)
            if ident in seen or ident in skip_ids:
                continue
            if type(child) is dict:
                if module_dicts is None:
                    module_dicts = module_dict_ids()
                if ident in module_dicts:
                    continue
            seen.add(ident)
            found.append(child)
            queue.append(child)
    return found, not queue
