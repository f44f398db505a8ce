"""The dependency fields of a cell record: ``read``, ``read_all``, ``modified``, ``groups``
(and the groups' cost facts, ``group_costs``).

Before the cell (``before_cell``): the cell's reads are found statically (``cell_reads``) and
closed over what the notebook functions and classes they name may read (``code_reads``); the
candidates for an in-place change are the co-variable groups of those reads (every variable
when ``read_all``). Only candidates are fingerprinted, and only if their cached fingerprint
has no content hash yet.

After the cell (``after_cell``): candidates still bound to the same object are fingerprinted
again and compared; new and rebound variables get a fingerprint (big buffers hashed lazily,
big object graphs estimated instead of pickled); the groups of what changed are rebuilt
(``covariables``). Candidates too costly to measure count as modified, and they, like the
estimated graphs, have unknown links: ``covariables`` joins them with everything the cell
read, bound or changed.

The assumption that keeps this cheap: **a cell can only change objects reachable from the
variables it reads** (or from their co-variables). A 1 GB array that a cell does not mention
is not hashed again. Known gaps, not seen: objects reachable only through a module's state
(``mymodule.cache.append(1)`` where a variable aliases ``mymodule.cache``), through a library
function's closure, or through another thread.

Objects that cannot be fingerprinted (generators, locks, sockets ...) are "modified if read":
they count as modified when the cell reads them, or when it modifies a variable whose objects
they reach. That is re-decided in every cell from the objects themselves, so the mark cannot
get lost (ElasticNotebook lost it one cell later).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cell_reads import analyze_cell
from .code_reads import NAMESPACE_NAMES, global_names_of
from .covariables import CoVariables
from .fingerprints import Fingerprint, FingerprintTaker
from .group_costs import group_cost_fields
from .kernel_log import log_exception
from .object_links import LinkFilter
from .user_namespace import is_user_binding

#: Stand-in fields when the analysis itself failed: it may have read and changed anything.
_UNKNOWN = {
    "read": [], "read_all": True, "modified": [], "groups": [], "group_costs": [], "effects_known": True, "timing_known": True
}
#: Cells between two fresh ``LinkFilter``s (it caches ids of values stored on library classes).
_LINK_FILTER_CELLS = 200


@dataclass
class _CellPlan:
    """What ``before_cell`` found, for ``after_cell``."""

    reads: set[str]
    read_all: bool
    #: name → its fingerprint before the cell, for every candidate.
    before: dict[str, Fingerprint] = field(default_factory=dict)
    #: each candidate's group before the cell.
    groups: dict[str, frozenset] = field(default_factory=dict)


class CellDependencies:
    """Works out the dependency fields of each cell; keeps fingerprints and groups between cells.

    :param shell: the IPython shell.
    """

    def __init__(self, shell) -> None:
        self.shell = shell
        self.covariables = CoVariables()
        self._plan: _CellPlan | None = None
        self._known_ids: dict[str, int] | None = None
        self._before_ids: dict[str, int] = {}
        self._link_filter: LinkFilter | None = None
        self._link_filter_age = 0
        #: Variables fingerprinted for the last cell, in order (instrumentation for tests).
        self.last_fingerprinted: list[str] = []
        #: Bytes hashed for the last cell (instrumentation for tests and measurements).
        self.last_hashed_bytes = 0

    def _taker(self) -> FingerprintTaker:
        """A fingerprint taker sharing one ``LinkFilter`` over many cells."""
        if self._link_filter is None or self._link_filter_age >= _LINK_FILTER_CELLS or self._link_filter.is_stale():
            self._link_filter = LinkFilter(self.shell.user_ns)
            self._link_filter_age = 0
        self._link_filter_age += 1
        return FingerprintTaker(self.shell.user_ns, self._link_filter)

    # -- before the cell -------------------------------------------------------------------------

    def before_cell(self, info, before_ids: dict[str, int]) -> None:
        """Analyses the cell about to run; never raises."""
        self.last_fingerprinted = []
        self.last_hashed_bytes = 0
        self._plan = None
        self._before_ids = before_ids
        try:
            self._plan = self._prepare(info, before_ids)
        except Exception as error:  # noqa: BLE001 - must not break the user's cell
            log_exception("could not analyse a cell's dependencies", error)
            self.covariables.clear()
            self._known_ids = None

    def _prepare(self, info, before_ids: dict[str, int]) -> _CellPlan:
        namespace = self.shell.user_ns
        if before_ids != self._known_ids:
            self._sync(before_ids, self._taker())
        code = getattr(info, "transformed_cell", None)
        raw = getattr(info, "raw_cell", "") or ""
        if code is None:
            code = self.shell.transform_cell(raw)
        found = analyze_cell(code, self.shell.transform_cell)
        reads, read_all = self._close_reads(found.names, found.read_all, before_ids)
        plan = _CellPlan(reads, read_all)
        entries = self.covariables.entries
        candidates = self._candidates(plan)
        # A candidate never fingerprinted (e.g. bound by code the agent did not see) needs one
        # now; taking it may reveal links, hence more candidates: repeat (a few rounds at most).
        # Big buffers stay unhashed (hash_large=False): see fingerprints.LAZY_HASH_FROM.
        taker = None
        for _ in range(3):
            missing = {}
            for name in sorted(candidates):
                if entries.get(name) is None:
                    taker = taker or self._taker()
                    missing[name] = taker.take(namespace[name], hash_large=False)
            if not missing:
                break
            self._note(taker, missing)
            self.covariables.update(missing)
            candidates = self._candidates(plan)
        plan.before = {name: entries[name] for name in candidates if name in entries}
        plan.groups = {name: self.covariables.group(name) for name in candidates}
        return plan

    def _candidates(self, plan: _CellPlan) -> set[str]:
        """Variables the cell may change: the groups of what it reads (all when ``read_all``)."""
        if plan.read_all:
            return set(self.covariables.entries)
        return {member for name in plan.reads for member in self.covariables.group(name)}

    def _sync(self, before_ids: dict[str, int], taker: FingerprintTaker) -> None:
        """Fingerprints variables the cache does not know (first cell, after a restore ...)."""
        entries = self.covariables.entries
        changes: dict[str, Fingerprint | None] = {name: None for name in entries if name not in before_ids}
        namespace = self.shell.user_ns
        for name, ident in before_ids.items():
            entry = entries.get(name)
            if entry is not None and entry.value_id == ident:
                continue
            if not is_user_binding(self.shell, name, ident):
                if entry is not None:
                    changes[name] = None
                continue
            changes[name] = taker.take(namespace[name], hash_large=False)
        fingerprinted = {name: fp for name, fp in changes.items() if fp is not None}
        self._note(taker, fingerprinted)
        self.covariables.update(changes)
        self._known_ids = before_ids

    def _close_reads(self, names: set[str], read_all: bool, before_ids: dict[str, int]) -> tuple[set[str], bool]:
        """Keeps the user variables among ``names`` and adds what their notebook code reads."""
        entries = self.covariables.entries
        namespace = self.shell.user_ns
        reads: set[str] = set()
        queue = list(names)
        while queue:
            name = queue.pop()
            if name in reads or name not in before_ids or not is_user_binding(self.shell, name, before_ids[name]):
                continue
            reads.add(name)
            entry = entries.get(name)
            more = entry.code_reads if entry is not None else global_names_of(namespace.get(name)) or ()
            if more:
                read_all |= not NAMESPACE_NAMES.isdisjoint(more)
                queue.extend(more)
        return reads, read_all

    def _note(self, taker: FingerprintTaker, fingerprinted: dict) -> None:
        self.last_fingerprinted.extend(fingerprinted)
        self.last_hashed_bytes += taker.hashed_bytes
        taker.hashed_bytes = 0

    # -- after the cell --------------------------------------------------------------------------

    def after_cell(self, result, after_ids: dict[str, int], created: list[str], deleted: list[str], rebound: list[str]) -> dict:
        """The dependency fields of the cell that just ran; never raises."""
        plan, self._plan = self._plan, None
        try:
            if plan is None:
                raise RuntimeError("the cell was not analysed before it ran")
            return self._finish(plan, result, after_ids, created, deleted, rebound)
        except Exception as error:  # noqa: BLE001 - must not break the user's cell
            if plan is not None:
                log_exception("could not work out a cell's dependencies", error)
            self.covariables.clear()
            self._known_ids = None
            # Unknown: it may have read anything and changed any variable it kept.
            fields = dict(_UNKNOWN)
            fields["modified"] = sorted(
                name
                for name, ident in self._before_ids.items()
                if after_ids.get(name) == ident and is_user_binding(self.shell, name, ident)
            )
            return fields

    def _finish(self, plan: _CellPlan, result, after_ids, created, deleted, rebound) -> dict:
        namespace = self.shell.user_ns
        if getattr(result, "error_before_exec", None) is not None:
            # Nothing ran (a syntax error, a rejected input): nothing was read or changed.
            plan = _CellPlan(set(), False)
        taker = self._taker()
        changes: dict[str, Fingerprint | None] = {name: None for name in deleted}
        for name in (*created, *rebound):
            # Bound by a cell the agent saw: a graph too big to pickle may be estimated (fingerprints doc).
            changes[name] = taker.take(namespace[name], hash_large=False, estimate=True)
        after: dict[str, Fingerprint] = {}
        unmeasured: dict[str, Fingerprint] = {}
        for name, old in sorted(plan.before.items()):
            if after_ids.get(name) == old.value_id and name not in changes:
                if old.too_costly_per_cell:
                    # May have changed, links too; not worth measuring (too_costly_per_cell).
                    unmeasured[name] = taker.unmeasured(namespace[name], old)
                    continue
                after[name] = changes[name] = taker.take(namespace[name], hash_large=False, previous=old, estimate=True)
        self._note(taker, {name: fp for name, fp in changes.items() if fp is not None})
        # Every unmeasured candidate counts: it is in the group of something the cell read.
        modified = self._modified(plan, after) | unmeasured.keys()
        self.covariables.update({**changes, **unmeasured})
        touched = (set(plan.before) if plan.read_all else plan.reads) | modified | {*created, *rebound}
        self.covariables.join_unknown_links(touched, plan.before)
        self._known_ids = after_ids
        changed_names = [*created, *rebound, *sorted(modified)]
        groups = self.covariables.groups_of(changed_names)
        return {
            "read": sorted(plan.reads),
            "read_all": plan.read_all,
            "modified": sorted(modified),
            "groups": groups,
            **group_cost_fields(self.covariables.entries, groups),  # never raises
            "effects_known": True,
            "timing_known": True,
        }

    @staticmethod
    def _modified(plan: _CellPlan, after: dict[str, Fingerprint]) -> set[str]:
        """Candidates whose reachable content or structure changed, plus unserializable ones it may reach."""
        modified: set[str] = set()
        opaque: set[str] = set()
        for name, new in after.items():
            old = plan.before[name]
            if not (old.serializable and new.serializable):
                opaque.add(name)
            elif old.digest is None or new.digest is None:
                # Too big to hash per cell: a cell that reads it may have changed it.
                modified.add(name)
            elif old.digest != new.digest or old.link_ids != new.link_ids:
                modified.add(name)
        modified.update(name for name in opaque if plan.read_all or name in plan.reads)
        # An unserializable value is changed when the cell changed something it reaches: a
        # modified member sharing an object with it that is not the top of an unmodified,
        # fully compared variable (``dlist[0] = [9]`` does not change ``l1``, so not ``gen``).
        grew = True
        while grew:
            grew = False
            for name in sorted(opaque - modified):
                group = plan.groups[name]
                reach = plan.before[name].link_ids | after[name].link_ids
                safe = {
                    plan.before[other].value_id
                    for other in group
                    if other in after and other not in modified and other not in opaque
                }
                for other in group & modified:
                    if other != name and (reach & plan.before[other].link_ids) - safe:
                        modified.add(name)
                        grew = True
                        break
        return modified
