"""Loads the jupyterhub-resume agent into every IPython kernel of every user server.

Why this route: the hub's ``pre_spawn_hook`` adds three environment variables to the single-user
server, and a ``python3`` kernelspec found first on ``JUPYTER_PATH`` starts the kernel with
``--ext=jupyterhub_resume_agent``. So:

* no image change: the agent is plain Python on ``PYTHONPATH`` and the kernelspec is a small
  directory; on Kubernetes both can be a mounted volume (ConfigMap or read-only volume);
* the user's own IPython profile, ``ipython_kernel_config.py`` and ``extensions`` list are kept:
  ``--ext`` feeds IPython's ``extra_extensions``, which is loaded *in addition* to them (a file in
  ``/etc/ipython`` or ``exec_lines`` would hide or compete with the user's configuration);
* the extension is loaded while the kernel initialises, before it answers any request, so a
  restore done there happens before any user cell can run (DESIGN invariant 2).

If the agent cannot be imported, IPython logs "Error in loading extension" and the kernel starts
normally: a broken agent never costs a user their kernel.
"""

import json
import os

#: The extension module IPython loads into each kernel.
AGENT_MODULE = "jupyterhub_resume_agent"

#: The kernel name we shadow: the one every notebook defaults to.
KERNEL_NAME = "python3"


def kernelspec():
    """Returns the ``kernel.json`` content of the agent-loading ``python3`` kernel.

    ``python`` as argv[0] is deliberate: jupyter_client replaces it with the single-user server's
    own ``sys.executable``, so the kernel runs in the same environment as the server, whatever image
    or virtual environment that is.
    """
    return {
        "argv": [
            "python",
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            f"--ext={AGENT_MODULE}",
        ],
        # Same name users see without the agent: the agent is invisible in the launcher.
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True, "jupyterhub_resume": {"agent": AGENT_MODULE}},
    }


def write_kernelspec(kernelspec_dir):
    """Writes ``<kernelspec_dir>/kernels/python3/kernel.json`` and returns its path.

    :param kernelspec_dir: a directory that will be put first on the server's ``JUPYTER_PATH``.
    """
    kernel_dir = os.path.join(kernelspec_dir, "kernels", KERNEL_NAME)
    os.makedirs(kernel_dir, exist_ok=True)
    path = os.path.join(kernel_dir, "kernel.json")
    # Write-then-rename: a server starting at the same moment never reads half a file.
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(kernelspec(), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def _prepend_path(entry, current):
    """Returns ``entry`` followed by the entries of ``current`` (an os.pathsep list), without duplicates.

    Spawner objects are reused for every start of the same server, so the hook runs again on a
    value it already changed: removing ``entry`` first keeps it from growing at each spawn.
    """
    rest = [p for p in (current or "").split(os.pathsep) if p and p != entry]
    return os.pathsep.join([entry, *rest])


def _value_for_server(spawner, key):
    """The value ``key`` would get in the server's environment without our hook.

    ``Spawner.environment`` wins over the hub's own environment (``env_keep``), and its values may
    be callables of the spawner (evaluated by JupyterHub at spawn time).
    """
    if key in spawner.environment:
        value = spawner.environment[key]
        return value(spawner) if callable(value) else value
    if key in spawner.env_keep:
        return os.environ.get(key)
    return None


def install_resume_hooks(
    c,
    *,
    service_url,
    agent_path,
    kernelspec_dir,
    write_kernelspec_now=True,
    request_timeout_s=None,
):
    """Makes every server this hub spawns load the resume agent into its IPython kernels.

    :param c: the hub's config object (``c`` in ``jupyterhub_config.py``).
    :param service_url: the service root as the *single-user server* reaches it, including the
        ``/services/<name>/`` prefix, e.g. ``http://127.0.0.1:10101/services/resume/``; becomes the
        kernels' ``JUPYTERHUB_RESUME_URL`` (with a trailing slash).
    :param agent_path: the directory that contains the ``jupyterhub_resume_agent`` package
        (``src/agent/python`` of this repository), as a path *on the server's machine*.
    :param kernelspec_dir: the directory holding ``kernels/python3/kernel.json``, as a path on the
        server's machine; it is put first on the server's ``JUPYTER_PATH``.
    :param write_kernelspec_now: write the kernelspec from the hub process now (right when the hub
        and the servers share a filesystem). On Kubernetes, set False and mount ``kernelspec()``
        into the user pods instead.
    :param request_timeout_s: optional ``JUPYTERHUB_RESUME_TIMEOUT`` for the agent's HTTP calls.
    """
    if not service_url:
        raise ValueError("install_resume_hooks: service_url is empty")
    resume_url = service_url if service_url.endswith("/") else service_url + "/"
    agent_path = os.path.abspath(agent_path)
    kernelspec_dir = os.path.abspath(kernelspec_dir)
    if write_kernelspec_now:
        write_kernelspec(kernelspec_dir)

    # Chain a hook configured earlier (e.g. one that creates home directories) instead of replacing it.
    previous = c.Spawner.pre_spawn_hook if "pre_spawn_hook" in c.Spawner else None

    async def resume_pre_spawn_hook(spawner):
        if previous is not None:
            result = previous(spawner)
            if hasattr(result, "__await__"):
                await result
        # Assign a new dict: never mutate a dict that might be shared with the config object.
        environment = dict(spawner.environment)
        environment["PYTHONPATH"] = _prepend_path(agent_path, _value_for_server(spawner, "PYTHONPATH"))
        environment["JUPYTER_PATH"] = _prepend_path(kernelspec_dir, _value_for_server(spawner, "JUPYTER_PATH"))
        environment["JUPYTERHUB_RESUME_URL"] = resume_url
        if request_timeout_s is not None:
            environment["JUPYTERHUB_RESUME_TIMEOUT"] = str(request_timeout_s)
        spawner.environment = environment

    c.Spawner.pre_spawn_hook = resume_pre_spawn_hook
