import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The service's Prometheus metrics, on a registry of its own (tests create several services in one
 * process). Names follow JupyterHub's conventions: snake_case, base units, a `status` label.
 * No label carries a user name: metrics are not a place for personal data.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly checkpoints = new Counter({
    name: 'jupyterhub_resume_checkpoints_total',
    help: 'Kernel checkpoints attempted, by trigger and outcome.',
    labelNames: ['trigger', 'status'] as const,
    registers: [this.registry],
  });
  readonly checkpointDuration = new Histogram({
    name: 'jupyterhub_resume_checkpoint_duration_seconds',
    help: 'Time to checkpoint one kernel, from the first command to the commit.',
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly bytesUploaded = new Counter({
    name: 'jupyterhub_resume_blob_bytes_uploaded_total',
    help: 'Checkpoint bytes agents uploaded.',
    registers: [this.registry],
  });
  readonly restores = new Counter({
    name: 'jupyterhub_resume_restores_total',
    help: 'Restores reported by agents, by outcome (ok, or partial when some variable failed).',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly restoreDuration = new Histogram({
    name: 'jupyterhub_resume_restore_duration_seconds',
    help: 'Time an agent took to restore a kernel at start.',
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly culls = new Counter({
    name: 'jupyterhub_resume_culls_total',
    help: 'Servers considered by the culler, by decision (culled, kept-busy, kept-checkpoint-failed, stop-failed).',
    labelNames: ['decision'] as const,
    registers: [this.registry],
  });
  readonly cellsRecorded = new Counter({
    name: 'jupyterhub_resume_cells_recorded_total',
    help: 'Cell executions recorded by agents.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'jupyterhub_resume_' });
  }
}
