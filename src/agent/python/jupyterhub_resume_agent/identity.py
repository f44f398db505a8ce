"""Who this kernel is: its id, kernel name and notebook, as the service registers it."""

from __future__ import annotations

import json
import platform
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from .agent_settings import AgentSettings

_KERNEL_FILE = re.compile(r"kernel-(?P<id>[^/\\]+)\.json$")


def utc_timestamp(moment: datetime | None = None) -> str:
    """Formats a moment as ISO 8601 UTC with milliseconds and a ``Z``, as the protocol's times are.

    :param moment: an aware datetime; default now.
    """
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class KernelIdentity:
    """The fields of ``POST api/agent/kernels`` that describe this kernel run."""

    kernel_id: str
    kernel_name: str
    notebook_path: str
    server_url: str
    python_version: str
    started_at: str

    def registration(self, protocol: int, agent_version: str) -> dict:
        """The registration request body.

        :param protocol: the protocol version the agent speaks.
        :param agent_version: the agent's version string.
        """
        return {
            "protocol": protocol,
            "agent_version": agent_version,
            "kernel_id": self.kernel_id,
            "kernel_name": self.kernel_name,
            "notebook_path": self.notebook_path,
            "server_url": self.server_url,
            "python_version": self.python_version,
            "started_at": self.started_at,
            # The agent posts ``runs/<id>/ended`` when the kernel exits normally (Agent.close), so
            # the service can tell a kernel that died from one that was shut down or restarted.
            "reports_end": True,
        }


def find_connection_file() -> str | None:
    """The running ipykernel's connection file, or ``None`` outside ipykernel (e.g. a terminal)."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None:
        return None
    app_class = kernelapp.IPKernelApp
    if not app_class.initialized():
        return None
    try:
        return str(app_class.instance().abs_connection_file)
    except Exception:  # an app without a connection file is not worth failing over
        return None


def read_identity(settings: AgentSettings, connection_file: str | None = None) -> KernelIdentity:
    """Builds the kernel's identity from its connection file and the environment.

    The kernel id comes from the connection file's name (``kernel-<id>.json``), the kernel name
    from its ``kernel_name`` field; either is ``""`` when unknown.

    :param settings: the agent's settings (notebook path, server URL).
    :param connection_file: path of the connection file; default: the running kernel's.
    """
    path = connection_file if connection_file is not None else find_connection_file()
    kernel_id = ""
    kernel_name = ""
    if path:
        match = _KERNEL_FILE.search(path)
        if match:
            kernel_id = match.group("id")
        try:
            with open(path, encoding="utf-8") as handle:
                kernel_name = str(json.load(handle).get("kernel_name") or "")
        except (OSError, ValueError, AttributeError):
            kernel_name = ""
    return KernelIdentity(
        kernel_id=kernel_id,
        kernel_name=kernel_name,
        notebook_path=settings.notebook_path,
        server_url=settings.server_url,
        python_version=platform.python_version(),
        started_at=utc_timestamp(),
    )
