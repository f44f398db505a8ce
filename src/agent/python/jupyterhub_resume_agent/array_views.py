"""Keeps a numpy view a view of its base across a checkpoint (DESIGN invariant 8).

Pickle copies a view's visible elements into a new array. When the view's base array is itself
bound to a user variable, the pickler instead records "this view of that base" and the restore
rebuilds it over the restored base, so writes through one are seen through the other again.
Views of arrays that are not user variables (pandas' internal blocks, temporaries) are pickled
as copies on purpose: pandas' copy-on-write bookkeeping does not survive a pickle, and two
restored frames silently sharing memory would be worse than two copies.
"""

from __future__ import annotations

import sys


def rebuild_view(base, offset: int, shape: tuple, strides: tuple, dtype, writeable: bool):
    """Recreates a view over ``base`` (called by the unpickler).

    :param base: the restored base array.
    :param offset: byte offset of the view's first element in ``base``'s memory.
    """
    numpy = sys.modules.get("numpy") or __import__("numpy")
    view = numpy.ndarray(shape, dtype, buffer=base, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view


def root_array(array):
    """The array whose memory ``array`` views (following ``.base`` through views of views); itself if none."""
    numpy = sys.modules["numpy"]
    root = array
    while isinstance(root.base, numpy.ndarray):
        root = root.base
    return root


_root = root_array


def view_roots(values) -> set[int]:
    """``id()``s of plain ndarrays among ``values`` (the user's variables) that views may point into."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return set()
    return {id(value) for value in values if type(value) is numpy.ndarray and value.base is None}


def reduce_view(obj, root_ids: set[int]):
    """A pickle recipe (root, offset, shape, strides) for a view of a user array, else ``None``.

    :param obj: any object the pickler meets.
    :param root_ids: ``view_roots()`` of the variables being saved.
    """
    numpy = sys.modules.get("numpy")
    if numpy is None or type(obj) is not numpy.ndarray or not isinstance(obj.base, numpy.ndarray):
        return None
    root = _root(obj)
    if id(root) not in root_ids or obj.dtype.hasobject or root.dtype.hasobject:
        return None
    if not (root.flags.c_contiguous or root.flags.f_contiguous):
        return None
    offset = obj.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if offset < 0 or offset > root.nbytes:
        return None
    return rebuild_view, (root, offset, obj.shape, obj.strides, obj.dtype, bool(obj.flags.writeable))
