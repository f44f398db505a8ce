"""The one exception the agent raises on purpose, and how it becomes a command's answer."""

from __future__ import annotations


class AgentError(Exception):
    """An expected failure of the agent, with a stable code and a hint a person can act on.

    Codes follow the project's catalogue, ``RESUME_ERR_AGENT_<WHAT>`` (see the "Errors" section
    of docs/reference/agent-protocol.md). Commands never let it escape into the kernel: they
    answer with :meth:`to_response` instead.

    :param code: ``RESUME_ERR_AGENT_<WHAT>``.
    :param message: what went wrong, for a person; never contains a token.
    :param hint: what to do about it, or ``None``.
    """

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def to_response(self) -> dict:
        """The ``{"error": {...}}`` answer of a failed command.

        :returns: ``{"error": {"type": code, "message": message, "hint"?: hint}}``.
        """
        error = {"type": self.code, "message": self.message}
        if self.hint:
            error["hint"] = self.hint
        return {"error": error}
