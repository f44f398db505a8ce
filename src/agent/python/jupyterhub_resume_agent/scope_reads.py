"""Global names a nested scope of a cell reads: function, lambda, class and comprehension bodies.

A body is not run where it is written, so its reads are collected without flow order: names it
loads that are neither its parameters, nor bound anywhere in it (unless declared ``global``), nor
local to an enclosing function, are globals it reads; ``global`` names count as read. Nested
scopes are included, with the enclosing functions' locals as free variables. ``cell_reads``
decides *where* those reads happen (where a comprehension or lambda is, or where the cell loads
the name of a ``def``/``class``).
"""

from __future__ import annotations

import ast

#: Stands for "every variable" inside name sets (it is not an identifier, so no variable has it).
ALL = "*"

FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_NAMESPACE_NAMES_IN_FUNCTIONS = frozenset({"exec", "eval", "globals", "breakpoint", "get_ipython"})
NAMESPACE_ATTRIBUTES = frozenset({"f_globals", "f_locals", "_getframe", "currentframe", "user_ns", "user_global_ns"})


def is_main_subscript(node: ast.Subscript) -> bool:
    return isinstance(node.slice, ast.Constant) and node.slice.value == "__main__"


def imports_main(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "__main__"
    return any(alias.name == "__main__" for alias in node.names)


def import_bindings(node: ast.Import | ast.ImportFrom) -> list[str]:
    names = []
    for alias in node.names:
        if alias.name == "*":
            continue  # binds names nobody can list: none of them is certainly bound
        names.append(alias.asname or alias.name.split(".")[0])
    return names


class _ScopeCollector(ast.NodeVisitor):
    """One function, lambda, class or comprehension body, without descending into nested scopes.

    Collects names loaded and bound at this level, ``global``/``nonlocal`` declarations, whether
    the body can reach the whole namespace, and the nested scopes (whose decorators, defaults,
    bases and first iterable are evaluated here, so they are visited here).
    """

    def __init__(self) -> None:
        self.loaded: set[str] = set()
        self.assigned: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.nested: list[ast.AST] = []
        self.namespace_access = False

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loaded.add(node.id)
        else:
            self.assigned.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.loaded.add(node.target.id)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.nonlocals.update(node.names)

    def _visit_signature(self, node) -> None:
        arguments = node.args
        for default in [*arguments.defaults, *arguments.kw_defaults]:
            if default is not None:
                self.visit(default)
        if not isinstance(node, ast.Lambda):
            for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]:
                if argument is not None and argument.annotation is not None:
                    self.visit(argument.annotation)
            if node.returns is not None:
                self.visit(node.returns)
            for decorator in node.decorator_list:
                self.visit(decorator)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.assigned.add(node.name)
        self._visit_signature(node)
        self.nested.append(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature(node)
        self.nested.append(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.assigned.add(node.name)
        for child in [*node.bases, *node.keywords, *node.decorator_list]:
            self.visit(child)
        self.nested.append(node)

    def _visit_comprehension(self, node) -> None:
        self.visit(node.generators[0].iter)
        for child in ast.walk(node):
            # A walrus in a comprehension binds in the enclosing function.
            if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                self.assigned.add(child.target.id)
        self.nested.append(node)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_Import(self, node: ast.Import) -> None:
        self.assigned.update(import_bindings(node))
        self.namespace_access |= imports_main(node)

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.assigned.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node) -> None:
        if node.name:
            self.assigned.add(node.name)
        self.generic_visit(node)

    visit_MatchStar = visit_MatchAs

    def visit_MatchMapping(self, node) -> None:
        if node.rest:
            self.assigned.add(node.rest)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.namespace_access |= node.attr in NAMESPACE_ATTRIBUTES
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.namespace_access |= is_main_subscript(node)
        self.generic_visit(node)


def _parameters(node) -> set[str]:
    arguments = node.args
    names = {argument.arg for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
    names.update(argument.arg for argument in (arguments.vararg, arguments.kwarg) if argument is not None)
    return names


def scope_reads(node: ast.AST, enclosing: frozenset[str]) -> set[str]:
    """Global names a nested scope (and the scopes inside it) may read when it runs.

    :param node: a function, lambda, class or comprehension node.
    :param enclosing: names local to the enclosing functions (free variables, not globals).
    :returns: the names; ``ALL`` among them when the body can reach the whole namespace.
    """
    collector = _ScopeCollector()
    if isinstance(node, (*FUNCTION_NODES, ast.Lambda)):
        for statement in node.body if isinstance(node.body, list) else [node.body]:
            collector.visit(statement)
        local = (_parameters(node) | collector.assigned) - collector.globals - collector.nonlocals
        inner = (enclosing - collector.globals) | local
    elif isinstance(node, ast.ClassDef):
        for statement in node.body:
            collector.visit(statement)
        # A class body is run once, top to bottom; counting its own attributes as global reads
        # too is a harmless superset. Its scope does not enclose its methods.
        local = set()
        inner = enclosing
    else:
        targets = _ScopeCollector()
        for generator in node.generators:
            targets.visit(generator.target)
        for index, generator in enumerate(node.generators):
            collector.visit(generator.target)
            if index:
                collector.visit(generator.iter)
            for condition in generator.ifs:
                collector.visit(condition)
        for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
            collector.visit(part)
        local = targets.assigned
        inner = enclosing | local
    reads = set(collector.globals)
    reads.update(name for name in collector.loaded if name not in local and name not in enclosing)
    if collector.namespace_access or _NAMESPACE_NAMES_IN_FUNCTIONS & (collector.loaded - local):
        reads.add(ALL)
    for nested in collector.nested:
        reads |= scope_reads(nested, frozenset(inner))
    return reads
