"""Which objects reachable from two variables make those variables one group.

After a variable is pickled, the pickler's memo holds every object it memoized (Kishu's trick:
pickle's own notion of reachability). Two variables whose memos share an object must be
pickled together, or ``b is a`` and shared sub-objects come back as copies. Not every shared
object counts: immutable atoms, classes, modules, functions from outside ``__main__`` and
library-owned singletons (numpy dtypes, enum members, class attributes like pandas'
``_metadata`` list) are shared by unrelated values all the time and would glue everything into
one group.
"""

from __future__ import annotations

import builtins
import datetime
import decimal
import enum
import fractions
import numbers
import sys
import types
from itertools import compress

_ATOM_TYPES = frozenset(
    {
        str, bytes, int, float, complex, bool, type(None), range, slice, type(Ellipsis),
        type(NotImplemented), types.CodeType, datetime.date, datetime.datetime, datetime.time,
        datetime.timedelta, datetime.timezone, decimal.Decimal, fractions.Fraction,
    }
)
_NEVER_MAIN_CALLABLES = (
    types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType,
    types.MethodDescriptorType, types.ClassMethodDescriptorType, types.GetSetDescriptorType,
    types.MemberDescriptorType, types.ModuleType,
)
_IMMUTABLE_BASES = (numbers.Number, datetime.date, datetime.time, datetime.timedelta, datetime.tzinfo, enum.Enum)
_CYTHON_FUNCTIONS = frozenset({"cython_function_or_method", "fused_cython_function"})
#: What a type's instances do in a memo (``LinkFilter._role``).
_NEVER, _LINKS, _IF_NOTEBOOK = "never", "links", "if notebook code"


class LinkFilter:
    """Decides which memoized objects link variables; caches per-type facts for one checkpoint.

    :param namespace: the user namespace (its own dict appears in dill memos by reference).
    """

    def __init__(self, namespace: dict) -> None:
        self._skip_ids = {id(namespace), id(builtins.__dict__)}
        self._type_verdict: dict[type, bool] = {}
        self._roles: dict[type, str] = {}
        self._class_owned: set[int] = set()
        self._seen_types: set[type] = set()
        self._modules_seen = self._library_modules()
        self._library_singleton_types = self._library_types()

    @staticmethod
    def _library_modules() -> tuple:
        return sys.modules.get("numpy"), sys.modules.get("pandas.core.dtypes.base")

    def is_stale(self) -> bool:
        """Whether numpy or pandas was imported since this filter was made (it would miss their dtypes)."""
        return self._library_modules() != self._modules_seen

    @staticmethod
    def _library_types() -> tuple[type, ...]:
        kinds: list[type] = []
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            kinds.append(numpy.dtype)
        pandas_dtypes = sys.modules.get("pandas.core.dtypes.base")
        if pandas_dtypes is not None and hasattr(pandas_dtypes, "ExtensionDtype"):
            kinds.append(pandas_dtypes.ExtensionDtype)
        return tuple(kinds)

    def _links_by_type(self, kind: type) -> bool:
        verdict = self._type_verdict.get(kind)
        if verdict is None:
            verdict = not (
                kind in _ATOM_TYPES
                or issubclass(kind, _IMMUTABLE_BASES)
                or issubclass(kind, _NEVER_MAIN_CALLABLES)
                or kind.__name__ in _CYTHON_FUNCTIONS
                or (self._library_singleton_types and issubclass(kind, self._library_singleton_types))
            )
            self._type_verdict[kind] = verdict
        return verdict

    def _note_class_attributes(self, kind: type) -> None:
        # Values stored on classes (``DataFrame._metadata = []``) are reached from every instance.
        if kind in self._seen_types:
            return
        self._seen_types.add(kind)
        for klass in getattr(kind, "__mro__", ()):
            if klass.__module__ == "__main__":
                continue  # a user class links its instances anyway (the class itself is in the memo)
            try:
                self._class_owned.update(id(value) for value in vars(klass).values())
            except TypeError:
                continue

    def links(self, obj: object) -> bool:
        """Whether ``obj``, reached from two variables, makes them share state."""
        kind = type(obj)
        if kind is type or isinstance(obj, type) or kind is types.FunctionType:
            return getattr(obj, "__module__", None) == "__main__"
        if not self._links_by_type(kind):
            return False
        self._note_class_attributes(kind)
        ident = id(obj)
        return ident not in self._skip_ids and ident not in self._class_owned

    def linking_ids(
        self, memo_objects, top: object, top_always_links: bool = True, ignored_bases: tuple[type, ...] = ()
    ) -> set[int]:
        """The ids through which a variable can share state with others.

        :param memo_objects: the objects in the variable's pickler memo.
        :param top: the variable's value. With ``top_always_links`` (checkpoints) its own
            identity always links (``b = a``), even for an int or a module; without it (the
            dependency groups of cell records) only when ``links(top)``: equal small ints or
            one module bound to two names share no state.
        :param ignored_bases: types whose instances (subclasses' too) never link here (the top excepted).
        """
        # Decided per type, then the ids picked with C-level iterators: a memo can hold
        # hundreds of thousands of objects but only a few dozen types.
        objects = memo_objects if type(memo_objects) is list else list(memo_objects)
        kinds = list(map(type, objects))
        linking_kinds: set[type] = set()
        code_kinds: set[type] = set()
        for kind in set(kinds):
            role = self._roles.get(kind)
            if role is None:
                role = self._roles[kind] = self._role(kind)
            if role is _NEVER or (ignored_bases and issubclass(kind, ignored_bases)):
                continue
            (linking_kinds if role is _LINKS else code_kinds).add(kind)
        linked = set(map(id, compress(objects, map(linking_kinds.__contains__, kinds))))
        # ``&`` first: it walks the smaller set (class-owned ids run into the thousands).
        linked -= linked & self._skip_ids
        linked -= linked & self._class_owned
        if code_kinds:
            for obj in compress(objects, map(code_kinds.__contains__, kinds)):
                if getattr(obj, "__module__", None) == "__main__":
                    linked.add(id(obj))
        if top_always_links or self.links(top):
            linked.add(id(top))
        return linked

    def _role(self, kind: type) -> str:
        if kind is types.FunctionType or issubclass(kind, type):
            return _IF_NOTEBOOK  # notebook functions and classes link, library ones never
        if not self._links_by_type(kind):
            return _NEVER
        self._note_class_attributes(kind)
        return _LINKS


def group_names(names: list[str], link_ids: dict[str, set[int]]) -> list[list[str]]:
    """Union-find over variables that share a linking id.

    Set operations at C speed, never a Python step per id: a variable that reaches 100,000
    instances links through 200,000 ids. Each group keeps the ids its members link through; a
    variable whose ids meet none seen so far starts a group, any other joins every group its
    ids meet.

    :param names: variables in namespace order.
    :param link_ids: each variable's linking ids.
    :returns: groups in order of their first member, members in namespace order.
    """
    parent = {name: name for name in names}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    group_ids: dict[str, set[int]] = {}  # a group's root → the ids its members link through
    seen: set[int] = set()
    for name in names:
        ids = link_ids.get(name)
        if not ids:
            continue
        met = [] if seen.isdisjoint(ids) else [root for root, held in group_ids.items() if not held.isdisjoint(ids)]
        for root in met:
            parent[root] = name
        group_ids[name] = set().union(ids, *(group_ids.pop(root) for root in met)) if met else ids
        seen |= ids
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(find(name), []).append(name)
    return list(groups.values())
