"""What IPython's magics and shell escapes read from the namespace.

After ``shell.transform_cell``, ``%time w = x + 1`` is
``get_ipython().run_line_magic('time', 'w = x + 1')`` and ``!ls {d}`` is
``get_ipython().system('ls {d}')``: the variables hide in string arguments. IPython expands
``$name`` and ``{expression}`` in the line of every magic (and in ``!`` commands) from the user
namespace, so identifiers there are reads. Magics that run Python code (``%time``, ``%%timeit``,
``%%capture`` ...) give their code back to be analysed like a cell. A magic that may read the
namespace in ways not visible in its text (``%who``, ``%store``, ``%run``, and any magic this
module does not know, e.g. one from an extension) makes the cell ``read_all``: false positives
are allowed, false negatives are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_BRACES = re.compile(r"\{([^{}]*)\}")

#: Line magics whose argument is a Python statement, after options.
_CODE_LINE_MAGICS = frozenset({"time", "timeit", "prun"})
#: Cell magics whose body is Python code (for ``timeit`` the line is setup code too).
_CODE_CELL_MAGICS = frozenset({"time", "timeit", "prun", "capture"})
#: Line magics whose argument names objects to look at (``x?`` is ``%pinfo x``).
_OBJECT_MAGICS = frozenset({"pinfo", "pinfo2", "pdef", "pdoc", "psource", "pfile", "page"})
#: Line magics that read nothing from the namespace but what ``$x``/``{x}`` expansion puts in the line.
_PLAIN_LINE_MAGICS = frozenset(
    {
        "aimport", "alias", "alias_magic", "autoawait", "autocall", "automagic", "autoreload", "autosave",
        "bookmark", "cat", "cd", "clear", "colors", "conda", "config", "connect_info", "cp", "dhist", "dirs",
        "env", "gui", "hist", "history", "killbgscripts", "ldir", "less", "lf", "lk", "ll", "load", "load_ext",
        "logoff", "logon", "logstart", "logstate", "logstop", "ls", "lsmagic", "lx", "magic", "mamba", "man",
        "matplotlib", "micromamba", "mkdir", "more", "mv", "notebook", "pdb", "pip", "popd", "pprint",
        "precision", "pushd", "pwd", "qtconsole", "quickref", "rehashx", "reload_ext", "rm", "rmdir", "save",
        "sc", "set_env", "sx", "system", "tb", "unalias", "unload_ext", "uv", "xmode",
    }
)
#: Cell magics that run their body outside the kernel's namespace (a shell, a browser, a file).
_PLAIN_CELL_MAGICS = frozenset(
    {
        "bash", "file", "html", "HTML", "javascript", "js", "latex", "markdown", "perl", "pypy", "python",
        "python2", "python3", "ruby", "script", "sh", "svg", "sx", "system", "writefile",
    }
)
_TIMEIT_VALUE_OPTIONS = frozenset({"-n", "-r", "-p"})


@dataclass
class MagicReads:
    """What one magic or shell escape may read.

    ``names``: identifiers it may read; ``sources``: the Python code it runs, as alternative
    spellings (the first one that parses is analysed like a cell; when none parses, every
    identifier in ``fallback`` counts as read); ``read_all``: it may read anything.
    """

    names: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    fallback: set[str] = field(default_factory=set)
    read_all: bool = False


def expanded_names(text: str) -> set[str]:
    """Identifiers IPython's ``$name`` / ``{expression}`` expansion may look up in ``text``."""
    names = set(_DOLLAR.findall(text))
    for expression in _BRACES.findall(text):
        names.update(_IDENTIFIER.findall(expression))
    return names


def _statement_after_options(line: str, value_options: frozenset[str]) -> list[str]:
    """Candidate Python statements in a magic's line: the line, then with leading options removed."""
    candidates = [line]
    tokens = line.split()
    index = 0
    while index < len(tokens) and tokens[index].startswith("-"):
        index += 2 if tokens[index] in value_options else 1
        candidates.append(" ".join(tokens[index:]))
    return candidates


def magic_reads(method: str, arguments: list[str]) -> MagicReads:
    """What ``get_ipython().<method>(*arguments)`` may read.

    :param method: ``run_line_magic``, ``run_cell_magic``, ``system`` or ``getoutput``.
    :param arguments: its string arguments (magic name, line, body).
    """
    if method in ("system", "getoutput"):
        return MagicReads(names=expanded_names(arguments[0]) if arguments else set())
    if method not in ("run_line_magic", "run_cell_magic") or len(arguments) < 2:
        return MagicReads(read_all=True)
    name, line = arguments[0], arguments[1]
    found = MagicReads(names=expanded_names(line))
    if method == "run_line_magic":
        if name in _CODE_LINE_MAGICS:
            found.sources = _statement_after_options(line, _TIMEIT_VALUE_OPTIONS if name == "timeit" else frozenset())
            found.fallback = set(_IDENTIFIER.findall(line))
        elif name in _OBJECT_MAGICS:
            found.names.update(_IDENTIFIER.findall(line))
        elif name not in _PLAIN_LINE_MAGICS:
            found.read_all = True
        return found
    body = arguments[2] if len(arguments) > 2 else ""
    if name in _CODE_CELL_MAGICS:
        found.sources = [body]
        found.fallback = set(_IDENTIFIER.findall(body))
        if name == "timeit":
            found.names.update(_IDENTIFIER.findall(line))  # setup code after the options
    elif name not in _PLAIN_CELL_MAGICS:
        found.read_all = True
    return found
