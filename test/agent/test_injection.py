"""The agent also works when its sources are injected into a kernel that is already running.

The package is built in ``sys.modules`` from source text (no file on the kernel's path), which is
what the service does for kernels that started before it was deployed. This checks the package
needs nothing but its own modules' source: no ``__file__``, no data files.
"""

from __future__ import annotations

import json

from conftest import AGENT_PATH

PACKAGE = "jupyterhub_resume_agent"

INJECT = '''
def _jupyterhub_resume_inject(sources):
    # Everything lives inside this function: the injection must leave no user variables behind.
    import importlib.abc
    import importlib.util
    import sys

    package = {package!r}

    class Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def _key(self, name):
            if name == package:
                return "__init__"
            if name.startswith(package + "."):
                return name.split(".", 1)[1]
            return None

        def find_spec(self, name, path=None, target=None):
            key = self._key(name)
            if key in sources:
                return importlib.util.spec_from_loader(name, self, is_package=key == "__init__")
            return None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            key = self._key(module.__name__)
            if key == "__init__":
                module.__path__ = []
            exec(compile(sources[key], "<" + module.__name__ + ">", "exec"), module.__dict__)

    if package not in sys.modules:
        sys.meta_path.append(Sources())
    __import__(package).load_ipython_extension(get_ipython())

_jupyterhub_resume_inject(__import__("json").loads({sources!r}))
del _jupyterhub_resume_inject
'''


def _injection_code() -> str:
    sources = {path.stem: path.read_text() for path in (AGENT_PATH / PACKAGE).glob("*.py")}
    return INJECT.format(package=PACKAGE, sources=json.dumps(sources))


def _inject(kernel) -> None:
    msg_id = kernel.client.execute(_injection_code(), silent=True, store_history=False)
    reply = kernel.client.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok", reply["content"]


def test_an_injected_agent_records_and_checkpoints_like_a_loaded_one(start_kernel, tmp_path):
    kernel = start_kernel(with_agent=False)
    before = kernel.run("early = 1")
    assert kernel.value("__import__('importlib.util').util.find_spec('jupyterhub_resume_agent') is None")
    _inject(kernel)
    _inject(kernel)  # a second injection is a no-op
    later = kernel.run("late = [early, 2]")
    assert later.execution_count == before.execution_count + 1  # the injection ran silently
    cells = kernel.command({"op": "history"})["cells"]
    # The cell that ran before the injection is rebuilt from IPython's history, effects unknown.
    assert [cell["code"] for cell in cells] == ["early = 1", "late = [early, 2]"]
    assert [cell["seq"] for cell in cells] == [1, 2]
    assert [cell["effects_known"] for cell in cells] == [False, True]
    assert (cells[1]["read"], cells[1]["created"]) == (["early"], ["late"])
    manifest = kernel.command({"op": "checkpoint", "checkpoint_id": "ck-inj", "target": {"kind": "dir", "path": str(tmp_path)}})
    assert {item["name"]: item["how"] for item in manifest["variables"]} == {"early": "stored", "late": "stored"}
