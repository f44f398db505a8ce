"""Cost facts of co-variable groups: what storing each group a cell record reports would take.

A checkpoint stores a whole group or rebuilds it from history (agent protocol, "Dependency
fields"). What that choice needs to know about a group is already in its members' cached
fingerprints (``fingerprints.Fingerprint``): serialized size, whether a checkpoint can store it,
and why not. Fingerprints are taken again only when a variable could have changed, so the facts
of a group are as fresh as its fingerprints, at no extra cost per cell.

Per group, aligned index by index with the record's ``groups`` (field ``group_costs``):

* ``bytes``: the sum of the members' sizes (pickle plus out-of-band buffers); names bound to one
  object count it once. Members of a group share objects, which the group's one pickle stores
  once, so a sum over several objects over-estimates; a size the fingerprint does not know adds 0.
* ``bytes_exact``: true only when the group is a single object whose size was measured and is
  still current. Sizes of immutable atoms are estimates, and a variable too costly to fingerprint
  after every cell keeps the size it had when it was bound, which an in-place change may have
  made stale.
* ``serializable``: a checkpoint would store every member (``unserializable`` is empty). The
  rule is the checkpoint's own (``serializer.dump``: pickle, else dill), so a lock, an event, a
  queue or a notebook lambda counts as serializable: dill saves them, making new ones.
* ``unserializable``: ``{"name", "reason"}`` of each member neither pickle nor dill can save (a
  generator, a socket, a list holding one ...), the reason naming what failed, as a checkpoint's
  ``recompute`` entry would (``Fingerprint.unstorable_reason``).
"""

from __future__ import annotations

from collections.abc import Mapping

from .fingerprints import Fingerprint
from .kernel_log import log_exception


def group_cost_fields(entries: Mapping[str, Fingerprint], groups: list[list[str]]) -> dict:
    """``{"group_costs": [...]}`` for ``groups``, or ``{}`` when they cannot be worked out; never raises.

    :param entries: the cached fingerprint of every known variable (``CoVariables.entries``).
    :param groups: the groups the record reports, in its order.
    """
    try:
        return {"group_costs": [_group_cost(entries, group) for group in groups]}
    except Exception as error:  # noqa: BLE001 - must not break the user's cell
        # Leaving the field out says "not reported", which every reader handles.
        log_exception("could not work out the cost facts of a cell's groups", error)
        return {}


def _group_cost(entries: Mapping[str, Fingerprint], group: list[str]) -> dict:
    total = 0
    exact = True
    objects: set[int] = set()
    unserializable = []
    for name in group:
        fingerprint = entries.get(name)
        if fingerprint is None:
            # Never fingerprinted: its size is unknown; whether it pickles is for a checkpoint to find out.
            exact = False
            continue
        if fingerprint.unstorable_reason is not None:
            unserializable.append({"name": name, "reason": fingerprint.unstorable_reason})
        if fingerprint.value_id in objects:
            continue  # another name for an object already counted
        objects.add(fingerprint.value_id)
        total += fingerprint.size
        exact = exact and fingerprint.size_exact and not fingerprint.too_costly_per_cell
    return {
        "bytes": total,
        "bytes_exact": exact and len(objects) == 1,
        "serializable": not unserializable,
        "unserializable": unserializable,
    }
