"""Commands the service sends over the kernel channel, and the object that carries the answer."""

from __future__ import annotations

from .agent_error import AgentError
from .blob_target import open_target
from .checkpointer import checkpoint
from .describer import describe
from .kernel_log import log_exception
from .protocol import parse_command


class CommandResponse:
    """What ``command()`` returns: IPython puts ``_repr_json_()`` in ``data["application/json"]``.

    :param payload: the response object (JSON-compatible).
    """

    def __init__(self, payload: dict) -> None:
        self.payload = payload

    def _repr_json_(self) -> dict:
        """The response, as IPython's JSON formatter reads it."""
        return self.payload

    def __repr__(self) -> str:
        # text/plain is sent beside the JSON; keep it short instead of repeating a manifest.
        return "<jupyterhub-resume response>" if "error" not in self.payload else "<jupyterhub-resume error>"


def run_command(agent, raw) -> dict:
    """Runs one command and returns its response; never raises.

    :param agent: the loaded ``Agent``, or ``None`` when the extension is not loaded.
    :param raw: the request, as a JSON string or a decoded object.
    :returns: the op's response, or ``{"error": {"type", "message", "hint"?}}``.
    """
    op = "unparsed"
    try:
        request = parse_command(raw)
        op = request["op"]
        if agent is None:
            raise AgentError(
                "RESUME_ERR_AGENT_NOT_LOADED",
                "the jupyterhub_resume_agent extension is not loaded in this kernel",
                "Load it with %load_ext jupyterhub_resume_agent, or let the service inject it.",
            )
        agent.unhide_restored()
        return _dispatch(agent, request)
    except AgentError as error:
        return error.to_response()
    except Exception as error:  # noqa: BLE001 - commands never raise into the kernel
        log_exception(f"unexpected error in the {op} command", error)
        return AgentError(
            "RESUME_ERR_AGENT_INTERNAL",
            f"unexpected {type(error).__name__} in the agent: {error}",
            "This is a bug in the agent (its traceback is in the kernel's log); the kernel's own state is unaffected.",
        ).to_response()


def _dispatch(agent, request: dict) -> dict:
    op = request["op"]
    if op == "status":
        return agent.status()
    if op == "flush":
        if agent.uploader is None:
            return {"records_pending": 0}
        try:
            return {"records_pending": agent.uploader.flush(float(request.get("timeout_s", 10)))}
        except AgentError as error:
            response = error.to_response()
            response["records_pending"] = agent.uploader.pending
            return response
    if op == "history":
        return {"cells": agent.history()}
    if op == "checkpoint":
        target = open_target(request["target"], agent.settings.timeout_s)
        return checkpoint(
            agent.shell, request["checkpoint_id"], target, request.get("recompute"), request.get("base"), agent.changes
        )
    if op == "restore":
        source = open_target(request["source"], agent.settings.timeout_s)
        return agent.restore(request["manifest"], request.get("cells") or [], source, request.get("plan"))
    return describe(agent.shell)
