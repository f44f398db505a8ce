"""Which names in the kernel's namespace are the user's variables, and how types are named."""

from __future__ import annotations

#: IPython's own names: never user variables, even when rebound.
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})


def user_bindings(shell) -> dict[str, int]:
    """Maps every user variable to ``id()`` of its value, in namespace order.

    This runs twice per cell, so it is one pass over the namespace with no deep work: a name is
    skipped if it starts with ``_``, is one of IPython's own names, or is still bound to the very
    object IPython (or start-up code) hid from ``%who`` via ``user_ns_hidden``.

    :param shell: the IPython shell.
    """
    hidden = shell.user_ns_hidden
    return {
        name: id(value)
        for name, value in shell.user_ns.items()
        if type(name) is str
        and name[:1] != "_"
        and name not in IPYTHON_NAMES
        and not (name in hidden and hidden[name] is value)
    }


def user_variables(shell) -> dict[str, object]:
    """Maps every user variable to its value, in namespace order (same rules as ``user_bindings``).

    :param shell: the IPython shell.
    """
    hidden = shell.user_ns_hidden
    return {
        name: value
        for name, value in list(shell.user_ns.items())
        if type(name) is str
        and name[:1] != "_"
        and name not in IPYTHON_NAMES
        and not (name in hidden and hidden[name] is value)
    }


def type_name(value: object) -> str:
    """A value's type as people write it: ``int``, ``generator``, ``numpy.ndarray``.

    Builtins are bare; other types are ``module.qualname`` (numpy's public module is used for
    ``ndarray``, whose ``__module__`` already says ``numpy``).

    :param value: any object.
    """
    kind = type(value)
    module = getattr(kind, "__module__", None) or ""
    qualname = getattr(kind, "__qualname__", None) or kind.__name__
    if module in ("builtins", ""):
        return qualname
    return f"{module}.{qualname}"
