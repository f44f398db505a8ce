"""jupyterhub-resume's agent: records cells and checkpoints/restores variables inside a kernel.

Load it as an IPython extension (``--ext=jupyterhub_resume_agent`` at kernel start, or
``%load_ext``); the service then drives it with silent executes whose user expression is
``__import__('jupyterhub_resume_agent').command(<JSON>)``. The protocol is in
docs/reference/agent-protocol.md. Stdlib only; numpy, pandas and dill are used when present.
"""

from __future__ import annotations

import atexit

from .agent import Agent
from .commands import CommandResponse, run_command
from .kernel_log import log_exception
from .protocol import AGENT_VERSION

__version__ = AGENT_VERSION
__all__ = ["command", "load_ipython_extension", "unload_ipython_extension", "__version__"]

_agent: Agent | None = None


def load_ipython_extension(ip) -> None:
    """IPython entry point: starts recording; with a service, registers and restores first.

    Loading twice is a no-op. A service that cannot be reached costs one line on the kernel's
    stderr; the kernel works either way.

    :param ip: the IPython shell.
    """
    global _agent
    if _agent is not None:
        return
    try:
        agent = Agent(ip)
    except Exception as error:  # noqa: BLE001 - a broken agent must never break the kernel
        log_exception("the agent could not be created; this kernel is not recorded", error)
        return
    _agent = agent
    try:
        agent.start()
    except Exception as error:  # noqa: BLE001 - a broken agent must never break the kernel
        log_exception("the agent failed to start", error)
    atexit.register(agent.close)


def unload_ipython_extension(ip) -> None:
    """IPython entry point for ``%unload_ext``: stops recording and the upload thread."""
    global _agent
    agent, _agent = _agent, None
    if agent is not None:
        agent.close()
        atexit.unregister(agent.close)


def command(request) -> CommandResponse:
    """Runs one service command (a JSON string, see the protocol) and never raises.

    :param request: the request as JSON text (or an already decoded dict).
    :returns: an object whose ``_repr_json_()`` is the response.
    """
    return CommandResponse(run_command(_agent, request))
