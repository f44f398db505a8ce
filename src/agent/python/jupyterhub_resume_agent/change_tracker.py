"""Which variables changed since a checkpoint: what lets a checkpoint reuse its base's blobs.

Every recorded cell bumps a counter (the *generation*) and stamps the names it created,
rebound, deleted or changed in place (``modified`` of the cell record) with it. A checkpoint
the agent wrote, or a checkpoint it restored, is *marked* with the generation at that moment
and the ``id()`` of every binding. A variable is unchanged since a mark when no cell stamped it
afterwards and it is still bound to the same object.

How far this can be trusted is how far the cell records can: ``modified`` has false positives
(a big variable read by a cell counts as modified) but no false negatives for what the recorder
sees. It does not see changes made outside cells: by silent executes, by another thread, or
through module state (the known gaps listed in ``cell_dependencies``). The ``id()`` check catches
rebinding outside cells; in-place changes there go unseen, as they do in the history graph.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Marks kept (the service's base is always one of the last few checkpoints of the session).
_MAX_MARKS = 16


@dataclass(frozen=True)
class _Mark:
    generation: int
    ids: dict[str, int]


class ChangeTracker:
    """Generation stamps per variable, and marks at checkpoints and restores."""

    def __init__(self) -> None:
        self.generation = 0
        self._changed_at: dict[str, int] = {}
        self._marks: dict[str, _Mark] = {}

    def note_cell(self, record: dict) -> None:
        """Stamps what one recorded cell bound, removed or changed in place.

        :param record: a Cell record (``created``, ``rebound``, ``deleted``, ``modified``).
        """
        self.generation += 1
        for field in ("created", "rebound", "deleted", "modified"):
            for name in record.get(field) or ():
                self._changed_at[name] = self.generation

    def mark(self, checkpoint_id: str, ids: dict[str, int]) -> None:
        """Remembers the state of the namespace as checkpoint ``checkpoint_id`` holds it.

        :param ids: ``id()`` of each variable's value at that moment (``namespace_ids``).
        """
        self._marks.pop(checkpoint_id, None)
        self._marks[checkpoint_id] = _Mark(self.generation, dict(ids))
        while len(self._marks) > _MAX_MARKS:
            del self._marks[next(iter(self._marks))]

    def unchanged_since(self, checkpoint_id: str, names, ids: dict[str, int]) -> bool:
        """Whether every one of ``names`` is as it was at the mark of ``checkpoint_id``.

        ``False`` when that checkpoint was never marked here (written or restored by another
        kernel, or forgotten).

        :param ids: ``id()`` of each variable's value now.
        """
        mark = self._marks.get(checkpoint_id)
        if mark is None:
            return False
        return all(
            self._changed_at.get(name, 0) <= mark.generation and name in mark.ids and mark.ids[name] == ids.get(name)
            for name in names
        )
