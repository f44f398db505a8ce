"""``python -m jupyterhub_resume_agent.prestop``: checkpoint this server's kernels before it stops.

Run from inside a user's server as it is being stopped: a Kubernetes ``preStop`` hook of the
single-user pod (z2jh: ``singleuser.lifecycleHooks.preStop``), or a SIGTERM handler. It asks the
resume service, with the server's own hub token (``$JUPYTERHUB_API_TOKEN``), to checkpoint every
idle kernel of the server now, and waits for the answer: the kernels are still alive during
``preStop`` (jupyter_server shuts them down only at SIGTERM, which comes after).

The checkpoints become the restores of the server's next start. Exit status: 0 when every kernel
was saved (or there was none), 1 when one was busy or failed, 2 when the service is not configured,
cannot be reached in time, or refused the request.
"""

from __future__ import annotations

import argparse
import sys

from .agent_error import AgentError
from .agent_settings import AgentSettings
from .service_client import ServiceClient

#: A preStop hook runs inside the pod's termination grace period: 30 s for an eviction by default,
#: but about 1 s when the hub stops the server unless ``KubeSpawner.delete_grace_period`` is raised
#: (hub-config/README.md). Pass ``--timeout`` to match what the deployment grants.
DEFAULT_TIMEOUT_S = 25.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jupyterhub_resume_agent.prestop",
        description="Checkpoint every idle kernel of this Jupyter server before it stops.",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for the service")
    args = parser.parse_args(argv)
    settings = AgentSettings.from_environ()
    if not settings.resume_url or not settings.api_token:
        print(
            "jupyterhub-resume prestop: JUPYTERHUB_RESUME_URL and JUPYTERHUB_API_TOKEN must be set "
            "(the hub's spawner hook sets both in every user server)",
            file=sys.stderr,
        )
        return 2
    try:
        answer = ServiceClient(settings).post_json("api/agent/server/checkpoint", {}, timeout_s=args.timeout)
    except AgentError as error:
        print(f"jupyterhub-resume prestop: {error.message}", file=sys.stderr)
        return 2
    kernels = (answer or {}).get("kernels") or []
    for kernel in kernels:
        detail = kernel.get("checkpoint_id") or kernel.get("reason") or ""
        print(f"jupyterhub-resume prestop: kernel {kernel.get('kernel_id')}: {kernel.get('status')} {detail}".rstrip())
    if not kernels:
        print("jupyterhub-resume prestop: no kernel to save")
    return 0 if all(k.get("status") == "complete" for k in kernels) else 1


if __name__ == "__main__":
    sys.exit(main())
