"""Static read analysis of a cell (``cell_reads``): Python's scoping rules, in-process (no kernel).

The kernel tests (test_dependencies.py) check the same rules end to end; these pin the corner
cases of scoping that would be slow to set up one kernel cell at a time.
"""

from __future__ import annotations

import sys

import pytest

from conftest import AGENT_PATH

sys.path.insert(0, str(AGENT_PATH))
from jupyterhub_resume_agent.cell_reads import analyze_cell  # noqa: E402


def _reads(code: str) -> set[str]:
    found = analyze_cell(code)
    assert not found.read_all, code
    return found.names


@pytest.mark.parametrize(
    ("code", "reads"),
    [
        ("y = x", {"x"}),
        ("y = 1\nz = y", set()),
        ("x += 1", {"x"}),
        ("del x", set()),
        ("del x\nx = 1\ny = x", set()),
        ("a.b = 1\nc[0] = 2", {"a", "c"}),
        ("a.b.c = d", {"a", "d"}),
        ("if c:\n    y = 1\nz = y", {"c", "y"}),  # y may not have been bound
        ("if c:\n    y = 1\nelse:\n    y = 2\nz = y", {"c"}),
        ("for i in r:\n    t = i\nu = t", {"r", "t"}),
        ("while w:\n    q = 1\nprint(q)", {"w", "q", "print"}),
        ("try:\n    y = f()\nexcept E:\n    pass\nz = y", {"f", "E", "y"}),
        ("try:\n    y = f()\nexcept E as e:\n    y = e\nz = y", {"f", "E"}),
        ("with m as h:\n    v = h.read()\nprint(v)", {"m", "v", "print"}),
        ("def f(a, b=d):\n    return a + b + g", {"d"}),  # a def alone reads only its defaults
        ("def f(a):\n    return a + g\nr = f(1)", {"g"}),
        ("def f():\n    return h()\ndef h():\n    return z\nf()", {"z"}),
        ("def f():\n    global y\n    y = 1\nf()", {"y"}),
        ("def f():\n    q = 1\n    def inner():\n        return q + w\n    return inner\nf()", {"w"}),
        ("def f():\n    return [p for p in s if p > t]\nf()", {"s", "t"}),
        ("def f(n):\n    return f(n - 1)\nf(2)", set()),
        ("@deco\ndef f():\n    return z", {"deco", "z"}),  # the decorator may call it
        ("@property\ndef f():\n    return z", {"property"}),
        ("fn = lambda v: v + k", {"k"}),
        ("sq = [i * i for i in data if i > lo]", {"data", "lo"}),
        ("pairs = {k: v for k, v in items}", {"items"}),
        ("g = (x for x in xs)", {"xs"}),
        ("total = sum(v for v in vals)", {"sum", "vals"}),
        ("class K(Base):\n    attr = value\n    other = attr\n    def m(self):\n        return hidden", {"Base", "value"}),
        ("class K:\n    def m(self):\n        return hidden\nk = K()", {"hidden"}),
        ("import numpy as np\na = np.ones(3)", set()),
        ("from os import path\np = path.join(a, b)", {"a", "b"}),
        ("(n := 10)\nm = n", {"n"}),  # a walrus never makes a binding certain
        ("match cmd:\n    case Point(x=px):\n        out = px\n    case _:\n        out = other", {"cmd", "Point", "other"}),
        ("get_ipython().run_line_magic('time', 'w = x + 1')", {"x"}),
        ("get_ipython().run_line_magic('timeit', '-n 3 -r 2 f(x)')", {"f", "x"}),
        ("get_ipython().run_cell_magic('time', '', 'q = x\\nr = q + y\\n')", {"x", "y"}),
        ("get_ipython().system('ls {folder} $pattern')", {"folder", "pattern"}),
        ("files = get_ipython().getoutput('ls')", set()),
        ("get_ipython().run_line_magic('matplotlib', 'inline')", set()),
        ("get_ipython().run_line_magic('pinfo', 'obj')", {"obj"}),
        ("if __name__ == '__main__':\n    run()", {"__name__", "run"}),
        ("for i in range(2):\n    if i:\n        fn()\n    def fn():\n        return z", {"range", "fn", "z"}),
        # pandas/numexpr resolve names in the caller's frame.
        ("small = df.query('a > @limit')", {"df", "a", "limit"}),
        ("total = pd.eval(f'a + {c} + @b')", {"pd", "a", "b", "c"}),
        ("score = model.evaluate(x_test, y_test)", {"model", "x_test", "y_test"}),
    ],
)
def test_reads(code, reads):
    assert _reads(code) == reads


@pytest.mark.parametrize(
    "code",
    [
        "exec('y = x')",
        "eval('x')",
        "g = globals()",
        "l = locals()",
        "v = vars()",
        "d = dir()",
        "import __main__",
        "import sys\nm = sys.modules['__main__']",
        "f = sys._getframe().f_globals",
        "ip = get_ipython()\nns = ip.user_ns",
        "get_ipython().run_line_magic('who', '')",
        "get_ipython().run_line_magic('store', '-r')",
        "get_ipython().run_line_magic('run', 'script.py')",
        "get_ipython().run_cell_magic('some_extension_magic', '', 'x')",
        "def f():\n    return eval('z')\nf()",
        "def f(broken:",  # cannot be parsed: anything may be read
        "small = df.query(condition)",
    ],
)
def test_reads_everything(code):
    assert analyze_cell(code).read_all is True


def test_vars_and_dir_with_an_argument_are_ordinary_calls():
    assert _reads("v = vars(obj)\nd = dir(obj)") == {"vars", "dir", "obj"}


def test_magic_code_is_transformed_before_analysis():
    seen = []

    def transform(code: str) -> str:
        seen.append(code)
        return code.replace("%who", "get_ipython().run_line_magic('who', '')")

    found = analyze_cell("get_ipython().run_cell_magic('time', '', '%who\\n')", transform)
    assert seen == ["%who\n"] and found.read_all is True
