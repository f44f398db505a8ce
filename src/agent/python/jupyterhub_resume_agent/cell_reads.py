"""Which variables a cell may read: static analysis of its code after IPython's transformation.

The cell (``shell.transform_cell`` output, so magics and ``!`` lines are calls) is parsed and
walked with Python's scoping rules:

* The cell's own statements run top to bottom. A name counts as read when it is loaded before
  the cell has *certainly* bound it: a binding inside ``if``/``for``/``while``/``try``/``with``
  may not happen, so a later load still counts. ``x += 1`` loads ``x``; ``a.b = 1`` and
  ``a[i] = 1`` load ``a``; ``del x`` loads nothing (and unbinds ``x``).
* Function, lambda, comprehension and class bodies are scopes of their own: their parameters
  and local assignments are not reads; names they do not bind (or declare ``global``) are
  global reads. Comprehensions and lambdas count where they appear. A ``def``/``class`` body
  counts where the cell *loads* its name (a call, or passing it on): ``def g(): return z``
  then ``w = g(3)`` reads ``z``. A decorated function is passed to its decorator at once, so its
  body counts at once (unless the decorator is a known one like ``property``).
* ``exec``, ``eval``, ``globals()``, ``locals()``, ``vars()``/``dir()`` without arguments,
  ``breakpoint()``, ``import __main__``, frame or shell namespaces, a bare ``get_ipython`` and
  magics that may read the namespace (see ``magic_reads``) make the cell ``read_all``.
* ``df.query("a > @limit")``, ``pd.eval(...)`` and ``numexpr.evaluate(...)`` look names up in
  the caller's frame: every identifier in their string counts as read (``query``/``eval`` of a
  string computed elsewhere make the cell ``read_all``).

The result is a superset of the names loaded from the cell's global scope; the caller keeps the
ones that were user variables before the cell and adds what notebook functions read
(``code_reads``). Anything the analysis cannot handle makes the cell ``read_all``.
"""

from __future__ import annotations

import ast
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from .magic_reads import magic_reads
from .scope_reads import (
    FUNCTION_NODES,
    ALL,
    NAMESPACE_ATTRIBUTES,
    import_bindings,
    imports_main,
    is_main_subscript,
    scope_reads,
)

_NAMESPACE_CALLS = frozenset({"exec", "eval", "globals", "locals", "breakpoint"})
_NAMESPACE_CALLS_WITHOUT_ARGUMENTS = frozenset({"vars", "dir"})
#: Methods that evaluate a string against the caller's variables (pandas, numexpr).
_FRAME_EVALUATORS = frozenset({"query", "eval", "evaluate"})
#: Decorators known not to call the function they are given.
_PASSIVE_DECORATORS = frozenset(
    {"property", "staticmethod", "classmethod", "abstractmethod", "setter", "getter", "deleter", "wraps",
     "lru_cache", "cache", "cached_property", "dataclass", "total_ordering", "singledispatch", "register"}
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_MAX_MAGIC_DEPTH = 4


@dataclass(frozen=True)
class CellReads:
    """Names a cell may load from its global scope, and whether it may read anything at all."""

    names: frozenset
    read_all: bool


#: Analyses of recent cells by code: notebooks re-run the same cells over and over.
_recent: OrderedDict[str, CellReads] = OrderedDict()
_RECENT_CELLS = 256


def analyze_cell(code: str, transform: Callable[[str], str] | None = None) -> CellReads:
    """The reads of a transformed cell; never raises (a failure means ``read_all``).

    :param code: the cell after ``shell.transform_cell``.
    :param transform: ``shell.transform_cell``, for the code inside magics like ``%%time``.
    """
    found = _recent.get(code)
    if found is not None:
        _recent.move_to_end(code)
        return found
    try:
        flow = _CellFlow(transform)
        flow.run(_parse(code))
        found = CellReads(frozenset(flow.reads - {ALL}), flow.read_all or ALL in flow.reads)
    except Exception:  # noqa: BLE001 - a SyntaxError, or a construct this module gets wrong
        found = CellReads(frozenset(), True)
    _recent[code] = found
    if len(_recent) > _RECENT_CELLS:
        _recent.popitem(last=False)
    return found


def _parse(code: str) -> ast.Module:
    # IPython runs top-level ``await``; plain ast.parse would accept it too, compile() is explicit.
    return compile(code, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def _decorator_name(node: ast.expr) -> str:
    while isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _is_passive(decorators: list[ast.expr]) -> bool:
    return all(_decorator_name(node) in _PASSIVE_DECORATORS for node in decorators)


class _CellFlow:
    """Walks the cell's top-level statements in order, tracking the names certainly bound so far."""

    def __init__(self, transform: Callable[[str], str] | None, depth: int = 0) -> None:
        self.transform = transform
        self.depth = depth
        self.reads: set[str] = set()
        self.read_all = False
        #: Global reads of each ``def``/``class`` of the cell, counted where its name is loaded.
        self.deferred: dict[str, set[str]] = {}

    def run(self, tree: ast.Module) -> None:
        self.block(tree.body, set(), None)

    # -- loads ---------------------------------------------------------------------------------

    def load(self, name: str, bound: set[str], expanding: frozenset[str] = frozenset()) -> None:
        """``name`` is loaded at a point where ``bound`` names are certainly bound by the cell."""
        if name == ALL:
            self.read_all = True
        elif name not in bound:
            self.reads.add(name)
        elif name in self.deferred and name not in expanding:
            # The cell's own function or class: whatever its body reads is read now (or later,
            # when at least as much is bound).
            for inner in list(self.deferred[name]):
                self.load(inner, bound, expanding | {name})

    def expr(self, node: ast.AST | None, bound: set[str]) -> None:
        if node is None:
            return
        kind = type(node)
        if kind is ast.Name:
            if isinstance(node.ctx, ast.Load):
                if node.id == "get_ipython":
                    self.read_all = True  # the shell object reaches the namespace
                self.load(node.id, bound)
            return
        if kind is ast.Lambda:
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                self.expr(default, bound)
            for name in scope_reads(node, frozenset()):
                self.load(name, bound)
            return
        if kind in _COMPREHENSIONS:
            self.expr(node.generators[0].iter, bound)
            for name in scope_reads(node, frozenset()):
                self.load(name, bound)
            return
        if kind is ast.NamedExpr:
            self.expr(node.value, bound)  # a walrus binds, maybe: it never makes a name certain
            return
        if kind is ast.Call and self.call(node, bound):
            return
        if kind is ast.Attribute and node.attr in NAMESPACE_ATTRIBUTES:
            self.read_all = True
        elif kind is ast.Subscript and is_main_subscript(node):
            self.read_all = True
        for child in ast.iter_child_nodes(node):
            self.expr(child, bound)

    def call(self, node: ast.Call, bound: set[str]) -> bool:
        """Special calls; returns True when the call was fully handled here."""
        func = node.func
        if isinstance(func, ast.Name) and func.id not in bound:
            if func.id in _NAMESPACE_CALLS or (func.id in _NAMESPACE_CALLS_WITHOUT_ARGUMENTS and not node.args):
                self.read_all = True
            return False
        if isinstance(func, ast.Attribute) and func.attr in _FRAME_EVALUATORS and node.args:
            expression = node.args[0]
            parts = expression.values if isinstance(expression, ast.JoinedStr) else [expression]
            texts = [part.value for part in parts if isinstance(part, ast.Constant) and isinstance(part.value, str)]
            for text in texts:
                for name in _IDENTIFIER.findall(text):
                    self.load(name, bound)
            if not texts and func.attr != "evaluate":
                # A string computed elsewhere (``evaluate`` is left out: Keras' model.evaluate(x, y)).
                self.read_all = True
            return False
        if not (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython"
            and not func.value.args
            and all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args)
            and not node.keywords
        ):
            return False
        found = magic_reads(func.attr, [arg.value for arg in node.args])
        self.read_all |= found.read_all
        for name in found.names:
            self.load(name, bound)
        if found.sources:
            self.magic_code(found.sources, found.fallback, bound)
        return True

    def magic_code(self, sources: list[str], fallback: set[str], bound: set[str]) -> None:
        """Analyses the Python code a magic runs, where the magic runs (its bindings stay uncertain)."""
        if self.depth < _MAX_MAGIC_DEPTH:
            for source in sources:
                try:
                    code = self.transform(source) if self.transform is not None else source
                    tree = _parse(code)
                except Exception:  # noqa: BLE001 - try the next spelling
                    continue
                inner = _CellFlow(self.transform, self.depth + 1)
                inner.deferred = {name: set(reads) for name, reads in self.deferred.items()}
                inner.block(tree.body, set(bound), None)
                self.read_all |= inner.read_all
                for name in inner.reads:
                    self.load(name, bound)
                return
        for name in fallback:
            self.load(name, bound)

    # -- statements ----------------------------------------------------------------------------

    def bind(self, target: ast.AST, bound: set[str]) -> None:
        """Binds an assignment target; bases of attribute/subscript targets are loads."""
        if isinstance(target, ast.Name):
            bound.add(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.bind(element, bound)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, bound)
        elif isinstance(target, ast.Attribute):
            self.expr(target.value, bound)
        elif isinstance(target, ast.Subscript):
            self.expr(target.value, bound)
            self.expr(target.slice, bound)

    def block(self, body: list[ast.stmt], bound: set[str], sink: set[str] | None) -> set[str]:
        """Runs statements in order; returns the names certainly bound after them.

        :param sink: inside a class body, where its methods' reads go (else ``None``).
        """
        for statement in body:
            bound = self.statement(statement, bound, sink)
        return bound

    def statement(self, node: ast.stmt, bound: set[str], sink: set[str] | None) -> set[str]:
        kind = type(node)
        if kind in (ast.Expr, ast.Return):
            self.expr(node.value, bound)
        elif kind is ast.Assign:
            self.expr(node.value, bound)
            for target in node.targets:
                self.bind(target, bound)
        elif kind is ast.AugAssign:
            if isinstance(node.target, ast.Name):
                self.load(node.target.id, bound)
            self.expr(node.value, bound)
            self.bind(node.target, bound)
        elif kind is ast.AnnAssign:
            self.expr(node.annotation, bound)
            if node.value is not None:
                self.expr(node.value, bound)
                self.bind(node.target, bound)
            elif not isinstance(node.target, ast.Name):
                self.bind(node.target, set(bound))
        elif kind is ast.Delete:
            for target in node.targets:
                self.unbind(target, bound)
        elif kind in (ast.Import, ast.ImportFrom):
            if imports_main(node):
                self.read_all = True
            bound.update(import_bindings(node))
        elif kind in FUNCTION_NODES:
            self.define_function(node, bound, sink)
        elif kind is ast.ClassDef:
            self.define_class(node, bound, sink)
        elif kind is ast.If:
            self.expr(node.test, bound)
            then = self.block(node.body, set(bound), sink)
            otherwise = self.block(node.orelse, set(bound), sink)
            return bound | (then & otherwise)
        elif kind in (ast.For, ast.AsyncFor, ast.While):
            self.loop(node, bound, sink)
        elif kind in (ast.With, ast.AsyncWith):
            inside = set(bound)
            for item in node.items:
                self.expr(item.context_expr, inside)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, inside)
            self.block(node.body, set(inside), sink)
            return inside  # a context manager may swallow an exception half way through the body
        elif kind.__name__ in ("Try", "TryStar"):
            return self.try_statement(node, bound, sink)
        elif kind.__name__ == "Match":
            self.expr(node.subject, bound)
            for case in node.cases:
                inside = set(bound)
                self.pattern(case.pattern, inside)
                self.expr(case.guard, inside)
                self.block(case.body, inside, sink)
        elif kind in (ast.Raise, ast.Assert):
            for child in ast.iter_child_nodes(node):
                self.expr(child, bound)
        elif kind in (ast.Pass, ast.Break, ast.Continue, ast.Global, ast.Nonlocal):
            pass
        else:
            # A statement this module does not know (e.g. a newer syntax): every name in it is a read.
            for child in ast.walk(node):
                if isinstance(child, ast.Name):
                    self.load(child.id, bound)
        return bound

    def unbind(self, target: ast.AST, bound: set[str]) -> None:
        if isinstance(target, ast.Name):
            bound.discard(target.id)  # ``del x`` reads nothing
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.unbind(element, bound)
        elif isinstance(target, ast.Attribute):
            self.expr(target.value, bound)
        elif isinstance(target, ast.Subscript):
            self.expr(target.value, bound)
            self.expr(target.slice, bound)

    def pattern(self, node: ast.AST, bound: set[str]) -> None:
        for child in ast.walk(node):
            if isinstance(child, ast.expr):
                self.expr(child, bound)  # value patterns and class names are loads
            name = getattr(child, "name", None) or getattr(child, "rest", None)
            if isinstance(name, str):
                bound.add(name)

    def define_function(self, node, bound: set[str], sink: set[str] | None) -> None:
        for child in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            self.expr(child, bound)
        for argument in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]:
            if argument is not None:
                self.expr(argument.annotation, bound)
        self.expr(node.returns, bound)
        reads = scope_reads(node, frozenset())
        if not _is_passive(node.decorator_list):
            for name in reads:
                self.load(name, bound)  # the decorator gets the function now and may call it
        if sink is not None:
            sink.update(reads)
        else:
            self.deferred.setdefault(node.name, set()).update(reads)
        bound.add(node.name)

    def define_class(self, node: ast.ClassDef, bound: set[str], sink: set[str] | None) -> None:
        for child in [*node.bases, *node.keywords, *node.decorator_list]:
            self.expr(child, bound)
        methods: set[str] = set()
        # The class body runs now, in order, seeing the cell's bindings and its own.
        self.block(node.body, set(bound), methods)
        if not _is_passive(node.decorator_list):
            for name in methods:
                self.load(name, bound)
        if sink is not None:
            sink.update(methods)
        else:
            self.deferred.setdefault(node.name, set()).update(methods)
        bound.add(node.name)

    def loop(self, node, bound: set[str], sink: set[str] | None) -> None:
        if isinstance(node, ast.While):
            self.expr(node.test, bound)
            start = set(bound)
        else:
            self.expr(node.iter, bound)
            start = set(bound)
            self.bind(node.target, start)
        after_first = self.block(node.body, set(start), sink)
        if any(isinstance(child, (*FUNCTION_NODES, ast.ClassDef)) for child in ast.walk(node)):
            # A function defined in one iteration can be called in the next.
            self.block(node.body, start | after_first, sink)
        self.block(node.orelse, set(bound), sink)

    def try_statement(self, node, bound: set[str], sink: set[str] | None) -> set[str]:
        body = self.block(node.body, set(bound), sink)
        body = self.block(node.orelse, body, sink)
        outcomes = [body]
        for handler in node.handlers:
            inside = set(bound)
            self.expr(handler.type, inside)
            if handler.name:
                inside.add(handler.name)
            outcomes.append(self.block(handler.body, inside, sink))
        final = self.block(node.finalbody, set(bound), sink)
        certain = set.intersection(*outcomes) if node.handlers else body
        return certain | final
