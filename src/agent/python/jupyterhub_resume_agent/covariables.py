"""Co-variable groups: variables that share reachable mutable objects, kept up to date cell by cell.

Each variable's ``Fingerprint`` lists the ids through which it can share state
(``object_links``). Two variables sharing one are in one group, and so is anything connected
to them (union-find, as Kishu does). A change inside a shared object changes every variable of
the group, so a cell that reads one member is a candidate for changing all of them.

Groups are not recomputed from scratch after each cell: only the groups of variables whose
links changed (created, rebound, deleted, or a reachable object added or removed) are taken
apart and joined again, with any other group that now shares an id with them. ``b = a`` joins
``b`` to ``a``'s group; ``b = [9]`` afterwards splits it again. Unchanged groups are never
touched, so their (possibly large) id sets are not walked.

Variables whose links are not known (``Fingerprint.links_known`` false: a graph too big to
pickle per cell was estimated, a reference walk was cut short, or a cell that may have changed
a value too costly to measure ran) are joined conservatively instead (``join_unknown_links``).
Objects move between variables only through cells, and a cell can only reach what it reads. So
after each cell, every such variable the cell read or wrote (created, rebound, modified) takes
on, as links of its own, the links of everything the cell read or wrote: whatever the cell may
have put into it, or taken from it, is then in its group. Those links stay with it until it is
fingerprinted in full again (it is rebound), which can only merge groups more than needed. So
``head = nested[:100]`` joins ``head`` to an estimated ``nested``, and ``head[0][0] = 9`` later
makes ``nested`` a candidate, counted modified since it is too costly to measure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .fingerprints import Fingerprint
from .object_links import group_names


class CoVariables:
    """The fingerprints of the user's variables and the groups they form."""

    def __init__(self) -> None:
        self.entries: dict[str, Fingerprint] = {}
        self._group_of: dict[str, int] = {}
        self._members: dict[int, frozenset[str]] = {}
        self._next_group = 0
        # One holder of each link id: every holder of an id is in one group, so one is enough
        # to find the group a changed variable joins, without looking at the other groups.
        self._holder: dict[int, str] = {}

    def group(self, name: str) -> frozenset[str]:
        """The members of ``name``'s group (just ``name`` when it is not known)."""
        group_id = self._group_of.get(name)
        return self._members[group_id] if group_id is not None else frozenset((name,))

    def groups_of(self, names) -> list[list[str]]:
        """The distinct groups of ``names``: each sorted, ordered by their first member."""
        found = {self.group(name) for name in names}
        return sorted(sorted(group) for group in found)

    def clear(self) -> None:
        """Forgets everything (the next cell re-reads the namespace)."""
        self.entries.clear()
        self._group_of.clear()
        self._members.clear()
        self._holder.clear()

    def update(self, changes: dict[str, Fingerprint | None]) -> None:
        """Stores new fingerprints (``None``: the variable is gone) and regroups what they touch.

        :param changes: name → its new fingerprint, or ``None`` to forget it.
        """
        loose: set[str] = set()
        for name, fingerprint in changes.items():
            old = self.entries.get(name)
            if fingerprint is not None and old is not None and old.link_ids == fingerprint.link_ids:
                self.entries[name] = fingerprint  # new content, same links: its group stands
                continue
            loose.update(self._release(name))
            loose.add(name)
        if not loose:
            return
        # Every member of a released group drops its ids (they are registered again below).
        for name in loose:
            entry = self.entries.get(name)
            if entry is not None:
                for ident in entry.link_ids:
                    if self._holder.get(ident) == name:
                        del self._holder[ident]
        for name, fingerprint in changes.items():
            if name in loose:
                if fingerprint is None:
                    self.entries.pop(name, None)
                else:
                    self.entries[name] = fingerprint
        loose = {name for name in loose if name in self.entries}
        # A group left alone joins when it holds one of the loose variables' ids.
        joining: set[str] = set()
        for name in loose:
            for ident in self.entries[name].link_ids:
                holder = self._holder.get(ident)
                if holder is not None and holder not in loose and holder not in joining:
                    joining.update(self._release(holder))
        loose |= joining
        for members in self._components(loose):
            self._add_group(members)
        for name in loose:
            for ident in self.entries[name].link_ids:
                self._holder.setdefault(ident, name)

    def join_unknown_links(self, touched: set[str], before: Mapping[str, Fingerprint]) -> None:
        """Gives each touched variable whose links are unknown the links of everything touched.

        See the module doc. Called after ``update`` with a cell's fingerprints.

        :param touched: the variables the cell read (all of them when it may read anything),
            created, rebound or modified.
        :param before: the fingerprints of the cell's candidates before it ran (what a variable
            the cell deleted or rebound reached).
        """
        unknown = [name for name in touched if name in self.entries and not self.entries[name].links_known]
        if not unknown:
            return
        shared: set[int] = set()
        for name in touched:
            for fingerprint in (before.get(name), self.entries.get(name)):
                if fingerprint is not None:
                    shared.update(fingerprint.link_ids)
        changes = {}
        for name in unknown:
            entry = self.entries[name]
            if not shared <= entry.link_ids:
                changes[name] = replace(entry, link_ids=entry.link_ids | shared)
        if changes:
            self.update(changes)

    def _release(self, name: str) -> frozenset[str]:
        """Takes ``name``'s group apart; returns its members (``name`` alone if it had none)."""
        group_id = self._group_of.get(name)
        if group_id is None:
            return frozenset((name,))
        members = self._members.pop(group_id)
        for member in members:
            del self._group_of[member]
        return members

    def _components(self, names: set[str]) -> list[set[str]]:
        """Connected components of ``names`` by shared linking ids (the checkpointer's union-find)."""
        ordered = sorted(names)
        return [set(group) for group in group_names(ordered, {name: self.entries[name].link_ids for name in ordered})]

    def _add_group(self, members: set[str]) -> None:
        group_id = self._next_group
        self._next_group += 1
        self._members[group_id] = frozenset(members)
        for member in members:
            self._group_of[member] = group_id
