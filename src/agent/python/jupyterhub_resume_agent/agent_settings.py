"""What the agent reads from its environment (docs/reference/agent-protocol.md, "Environment")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AgentSettings:
    """The agent's configuration, read once when it loads.

    ``resume_url`` is ``None`` when ``JUPYTERHUB_RESUME_URL`` is unset: the agent then records in
    memory only and never opens a network connection.
    """

    resume_url: str | None
    api_token: str | None
    server_url: str
    notebook_path: str
    timeout_s: float
    #: Problems found while reading the environment (logged once, never fatal).
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "AgentSettings":
        """Reads the settings from ``environ`` (default: ``os.environ``).

        :param environ: the environment to read.
        :returns: the settings; a malformed timeout falls back to the default with a warning.
        """
        env = os.environ if environ is None else environ
        warnings: list[str] = []
        url = (env.get("JUPYTERHUB_RESUME_URL") or "").strip() or None
        if url is not None and not url.endswith("/"):
            # Paths are joined relative to the root; without the slash urljoin drops its last part.
            url += "/"
        if url is not None and not url.startswith(("http://", "https://")):
            warnings.append("JUPYTERHUB_RESUME_URL is not an http(s) URL; the agent stays offline")
            url = None
        timeout_s = DEFAULT_TIMEOUT_S
        raw_timeout = env.get("JUPYTERHUB_RESUME_TIMEOUT")
        if raw_timeout:
            try:
                timeout_s = float(raw_timeout)
                if not timeout_s > 0:
                    raise ValueError
            except ValueError:
                warnings.append(
                    f"JUPYTERHUB_RESUME_TIMEOUT={raw_timeout!r} is not a positive number of seconds; "
                    f"using {DEFAULT_TIMEOUT_S:g}"
                )
                timeout_s = DEFAULT_TIMEOUT_S
        return cls(
            resume_url=url,
            api_token=env.get("JUPYTERHUB_API_TOKEN") or None,
            server_url=env.get("JUPYTERHUB_SERVICE_URL", ""),
            notebook_path=env.get("JPY_SESSION_NAME", ""),
            timeout_s=timeout_s,
            warnings=tuple(warnings),
        )
