"""Which names in the kernel's namespace are the user's variables, and how types are named."""

from __future__ import annotations

#: IPython's own names: never user variables, even when rebound.
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})


def namespace_ids(shell) -> dict[str, int]:
    """Maps every name in the namespace (user's or not) to ``id()`` of its value.

    The recorder takes this twice per cell, so it is the cheapest possible pass: no filtering
    (that happens only for the few names a cell changed, see ``is_user_binding``; filtering
    here, e.g. IPython's ``_i<N>`` names, costs more per name than it saves later) and no
    references kept (a value the cell deletes is freed at once, as without the agent).

    :param shell: the IPython shell.
    """
    return {name: id(value) for name, value in shell.user_ns.items()}


def is_user_binding(shell, name, value_id: int) -> bool:
    """Whether ``name`` bound to the object with ``value_id`` is a user variable.

    Not a user variable: a name starting with ``_``, one of IPython's own names, or a name still
    bound to the very object IPython (or start-up code) hid from ``%who`` via ``user_ns_hidden``.

    :param shell: the IPython shell.
    :param name: a key of the namespace.
    :param value_id: ``id()`` of the value it is (or was) bound to.
    """
    if type(name) is not str or name[:1] == "_" or name in IPYTHON_NAMES:
        return False
    hidden = shell.user_ns_hidden
    return not (name in hidden and id(hidden[name]) == value_id)


def user_variables(shell) -> dict[str, object]:
    """Maps every user variable to its value, in namespace order (the rules of ``is_user_binding``).

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
