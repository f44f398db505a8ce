"""Which global names a notebook function or class may read when it runs, from its code objects.

A call ``f()`` reads whatever ``f``'s code reads, and that cannot be seen in the cell's text. The
code object says it cheaply and whatever the values' types are: ``co_names`` lists every global
(and attribute) name the bytecode mentions, nested code objects (inner functions, lambdas,
comprehensions) included. Attribute names make it a superset, which the protocol allows; it never
misses a global (ElasticNotebook's AST-based recursion dropped globals of "primitive" types).

Some names in code mean "may read any variable" (``globals()``, ``eval``, ``get_ipython``,
``sys._getframe().f_globals`` ...): ``NAMESPACE_NAMES`` lists them, and a function mentioning one
makes the cell ``read_all``.
"""

from __future__ import annotations

import types

#: Names in a code object that let it reach the whole notebook namespace. ``locals``/``vars``/``dir``
#: are left out: inside a function they see the function's own locals. ``query``/``evaluate``
#: (pandas, numexpr) resolve ``@name`` in the caller's frame, globals included.
NAMESPACE_NAMES = frozenset(
    {"globals", "eval", "exec", "get_ipython", "f_globals", "_getframe", "currentframe", "user_ns", "user_global_ns",
     "query", "evaluate"}
)

_METHOD_WRAPPERS = (staticmethod, classmethod)


def code_names(code: types.CodeType, into: set[str], seen: set[int] | None = None) -> set[str]:
    """Adds ``co_names`` of ``code`` and of every code object nested in it to ``into``.

    :param code: a code object.
    :param into: the set to fill (returned).
    :param seen: ids of code objects already done (shared by callers walking several functions).
    """
    seen = set() if seen is None else seen
    stack = [code]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        into.update(current.co_names)
        for const in current.co_consts:
            if type(const) is types.CodeType:
                stack.append(const)
    return into


def _functions_of_class(klass: type) -> list[types.FunctionType]:
    functions = []
    for value in vars(klass).values():
        if isinstance(value, _METHOD_WRAPPERS):
            value = value.__func__
        elif isinstance(value, property):
            functions.extend(f for f in (value.fget, value.fset, value.fdel) if type(f) is types.FunctionType)
            continue
        if type(value) is types.FunctionType:
            functions.append(value)
    return functions


def _unwrap(function) -> list[types.FunctionType]:
    """The function itself plus what a decorator wrapped (``__wrapped__``, closure cells)."""
    found = []
    stack = [function]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if type(current) is types.FunctionType:
            found.append(current)
            for cell in current.__closure__ or ():
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if type(contents) is types.FunctionType:
                    stack.append(contents)
        wrapped = _wrapped(current)
        if wrapped is not None:
            stack.append(wrapped)
    return found


def _wrapped(value: object) -> object:
    """``value.__wrapped__`` as ``functools.wraps`` stores it, read without running any user code.

    ``getattr`` could run a class's ``__getattr__`` (a mock answers every name, forever).
    """
    if isinstance(value, type):
        return None
    try:
        attributes = object.__getattribute__(value, "__dict__")
    except Exception:  # noqa: BLE001 - no instance dict: nothing was wrapped this way
        return None
    return attributes.get("__wrapped__") if type(attributes) is dict else None


def is_notebook_code(value: object) -> bool:
    """Whether ``value`` is a function or class defined in the notebook (``__main__``)."""
    return getattr(value, "__module__", None) == "__main__" and (
        type(value) is types.FunctionType or isinstance(value, type)
    )


def global_names_of(value: object, seen: set[int] | None = None) -> set[str] | None:
    """The names a notebook function, class, instance or decorated function may read as globals.

    :param value: any object.
    :param seen: ids of code objects already walked (to share work across values).
    :returns: the names, or ``None`` when ``value`` holds no notebook code this way.
    """
    functions: list[types.FunctionType] = []
    if type(value) is types.FunctionType or _wrapped(value) is not None:
        functions = [f for f in _unwrap(value) if f.__module__ == "__main__"]
    elif type(value) is types.MethodType:
        functions = [f for f in _unwrap(value.__func__) if f.__module__ == "__main__"]
    else:
        klass = value if isinstance(value, type) else type(value)
        for base in getattr(klass, "__mro__", ()):
            if base.__module__ == "__main__":
                functions.extend(_functions_of_class(base))
    if not functions:
        return None
    names: set[str] = set()
    seen = set() if seen is None else seen
    for function in functions:
        code_names(function.__code__, names, seen)
    return names
