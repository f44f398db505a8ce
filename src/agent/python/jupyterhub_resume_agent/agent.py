"""One kernel's agent: its recorder, its link to the service, and the restore at kernel start."""

from __future__ import annotations

import time

from .agent_error import AgentError
from .agent_settings import AgentSettings
from .blob_target import open_target
from .change_tracker import ChangeTracker
from .history_import import rebuild_records
from .identity import KernelIdentity, read_identity
from .kernel_log import log_exception, log_line
from .protocol import AGENT_VERSION, PROTOCOL_VERSION, parse_register_answer
from .record_uploader import RecordUploader
from .recorder import Recorder
from .restorer import restore
from .service_client import ServiceClient
from .user_namespace import namespace_ids

_SUMMARY_NAMES = 12
#: The exit report must not hold up a kernel shutdown (jupyter_client kills kernels that take long).
_ENDED_TIMEOUT_S = 1.5


def _names(entries: list[dict]) -> str:
    names = [entry["name"] for entry in entries]
    shown = ", ".join(names[:_SUMMARY_NAMES])
    return shown if len(names) <= _SUMMARY_NAMES else f"{shown} and {len(names) - _SUMMARY_NAMES} more"


def restore_summary(report: dict) -> str:
    """The one paragraph shown under the user's first cell after a restore at kernel start.

    :param report: a RestoreReport.
    """
    by_status: dict[str, list[dict]] = {}
    for entry in report["variables"]:
        by_status.setdefault(entry["status"], []).append(entry)
    parts = []
    for status, label in (("stored", "copied"), ("recomputed", "recomputed"), ("imported", "re-imported")):
        if by_status.get(status):
            parts.append(f"{label} {len(by_status[status])} ({_names(by_status[status])})")
    text = (
        f"jupyterhub-resume restored this notebook's variables from checkpoint {report['checkpoint_id']} "
        f"in {report['duration_s']:.2f} s: " + ("; ".join(parts) if parts else "nothing to restore") + "."
    )
    failed = by_status.get("failed") or []
    if failed:
        reasons = "; ".join(f"{entry['name']}: {entry.get('error', 'unknown error')}" for entry in failed[:_SUMMARY_NAMES])
        more = f" and {len(failed) - _SUMMARY_NAMES} more" if len(failed) > _SUMMARY_NAMES else ""
        text += f" Could not restore {len(failed)}: {reasons}{more}. Re-run the cells that make them."
    return text


class Agent:
    """Everything the agent keeps for one kernel.

    :param shell: the IPython shell.
    :param settings: default: read from the environment.
    :param identity: default: read from the kernel's connection file.
    """

    def __init__(self, shell, settings: AgentSettings | None = None, identity: KernelIdentity | None = None) -> None:
        self.shell = shell
        self.settings = settings or AgentSettings.from_environ()
        self.identity = identity or read_identity(self.settings)
        self.client = ServiceClient(self.settings) if self.settings.resume_url else None
        self.run_id: str | None = None
        self.restored_cells: list[dict] = []
        self.last_restore_report: dict | None = None
        self._restored_names: set[str] = set()
        self._pending_summary: str | None = None
        self.uploader = RecordUploader(self._send_records) if self.client else None
        #: What changed since each checkpoint written or restored here (incremental checkpoints).
        self.changes = ChangeTracker()
        self.recorder = Recorder(shell, on_record=self._on_record, before_cell=self.before_user_cell)

    def start(self) -> None:
        """Starts recording; with a service, registers and restores a waiting checkpoint first."""
        for warning in self.settings.warnings:
            log_line(f"jupyterhub-resume: {warning}")
        # Cells the kernel ran before the agent was loaded (injection, a late %load_ext).
        earlier = rebuild_records(self.shell)
        self.recorder.import_history(earlier)
        for record in earlier:
            self.changes.note_cell(record)  # before a restore at start marks its checkpoint
        if self.client is not None:
            self._register()
        for record in earlier:
            self._submit(record)
        self.recorder.register()

    def close(self) -> None:
        """Stops recording, gives queued records one last short chance to reach the service, then
        tells it this kernel ended normally (a kernel that dies never gets here: its next kernel
        then recovers its state)."""
        self.recorder.unregister()
        if self.uploader is not None:
            self.uploader.close(timeout_s=1.0)
        if self.client is not None and self.run_id is not None:
            try:
                self.client.post_ended(self.run_id, timeout_s=_ENDED_TIMEOUT_S)
            except AgentError as error:
                log_line(f"jupyterhub-resume: could not report the kernel's exit: {error.message}")

    def _register(self) -> None:
        try:
            answer = parse_register_answer(
                self.client.register(self.identity.registration(PROTOCOL_VERSION, AGENT_VERSION))
            )
        except AgentError as error:
            log_line(f"jupyterhub-resume: {error.message}; this kernel is recorded in memory only")
            return
        self.run_id = answer["run_id"]
        if answer.get("restore"):
            self._restore_at_start(answer["restore"])

    def _restore_at_start(self, pending: dict) -> None:
        t_start = time.perf_counter()
        manifest = pending["manifest"]
        try:
            source = open_target(pending["source"], self.settings.timeout_s)
            report = self.restore(manifest, pending.get("cells") or [], source, pending.get("plan"))
        except Exception as error:  # noqa: BLE001 - the kernel must start whatever happens here
            if not isinstance(error, AgentError):
                log_exception("the restore at kernel start failed unexpectedly", error)
            message = error.message if isinstance(error, AgentError) else f"{type(error).__name__}: {error}"
            report = {
                "checkpoint_id": pending["checkpoint_id"],
                "duration_s": round(time.perf_counter() - t_start, 6),
                "execution_count": int(self.shell.execution_count),
                "variables": [
                    {"name": item["name"], "status": "failed", "error": message} for item in manifest.get("variables") or []
                ],
            }
        self._pending_summary = restore_summary(report)
        if pending.get("notice"):
            # A recovery: say first why the state comes back, and from where.
            self._pending_summary = f"{pending['notice']}\n{self._pending_summary}"
        try:
            self.client.post_restore_report(self.run_id, report)
        except AgentError as error:
            log_line(f"jupyterhub-resume: could not post the restore report: {error.message}")

    def restore(self, manifest: dict, cells: list[dict], source, plan: dict | None = None) -> dict:
        """Restores a checkpoint into this kernel and remembers its history.

        :param plan: the service's restore plan, if any (``restorer.restore_by_plan``).
        :returns: the RestoreReport.
        """
        report = restore(self.shell, manifest, cells, source, plan)
        # The namespace now holds what the checkpoint holds: its unchanged groups need no upload.
        self.changes.mark(manifest["checkpoint_id"], namespace_ids(self.shell))
        self.restored_cells = list(cells)
        self.last_restore_report = report
        self._restored_names.update(
            entry["name"] for entry in report["variables"] if entry["status"] in ("stored", "recomputed", "imported")
        )
        return report

    def before_user_cell(self) -> None:
        """Runs before every user cell (and command): shows a pending restore summary once."""
        self.unhide_restored()
        if self._pending_summary is not None:
            summary, self._pending_summary = self._pending_summary, None
            print(summary)

    def unhide_restored(self) -> None:
        """Makes restored variables user variables again.

        A restore at kernel start runs before IPython's start-up code, which then hides every
        name already in the namespace from ``%who`` (``user_ns_hidden``): without this, the
        restored variables would be invisible to ``%who`` and to the next checkpoint.
        """
        if not self._restored_names:
            return
        hidden = self.shell.user_ns_hidden
        namespace = self.shell.user_ns
        for name in self._restored_names:
            if name in hidden and name in namespace and hidden[name] is namespace[name]:
                del hidden[name]
        self._restored_names.clear()

    def _on_record(self, record: dict) -> None:
        self.changes.note_cell(record)
        self._submit(record)

    def _submit(self, record: dict) -> None:
        if self.uploader is not None and self.run_id is not None:
            self.uploader.submit(record)

    def _send_records(self, batch: list[dict]) -> None:
        self.client.post_cells(self.run_id, batch)

    def history(self) -> list[dict]:
        """The cells of the checkpoint this run was restored from, then this run's own."""
        return self.restored_cells + self.recorder.records

    def status(self) -> dict:
        """The ``status`` answer."""
        return {
            "protocol": PROTOCOL_VERSION,
            "agent_version": AGENT_VERSION,
            "run_id": self.run_id,
            "kernel_id": self.identity.kernel_id or None,
            "cells_recorded": self.recorder.count,
            "records_pending": self.uploader.pending if self.uploader is not None else 0,
        }
