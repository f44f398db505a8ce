import express, { type Response } from 'express';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { HistoryGraph } from '../../history/index.js';
import { explainReplication, type ExplainedPlan, type ReplicationPlan } from '../../planner/replication-planner.js';
import type { BlobStore, Checkpoint, CheckpointStore, CheckpointSummary, KernelSession } from '../../store/checkpoint-store.js';
import { authenticate, type HubIdentities, identityOf, isAdmin, requireServiceAccess } from '../auth/hub-identity.js';

export type CheckpointsRouterOptions = {
  store: CheckpointStore;
  blobs: BlobStore;
  /** RESUME_USER_QUOTA_MB in bytes, shown beside each user's usage; none when absent. */
  quotaBytes?: number;
  identities: HubIdentities;
  serviceName: string;
  logger: Logger;
};

/**
 * The user-facing checkpoints API: list your saved sessions, look at one (what was stored, what
 * will be recomputed, how its last restore went), and ask for one to be restored at the next kernel
 * start. Users see only their own checkpoints; callers with the `admin:servers` scope (hub admins)
 * see everyone's.
 */
export function checkpointsRouter(options: CheckpointsRouterOptions): express.Router {
  const { store, blobs, identities, serviceName, logger } = options;
  const router = express.Router();
  router.use(authenticate(identities), requireServiceAccess(serviceName));

  router.get('/', async (req, res) => {
    const identity = identityOf(res);
    const asked = typeof req.query['user'] === 'string' ? req.query['user'] : undefined;
    if (asked !== undefined && asked !== identity.name && !isAdmin(identity)) {
      throw forbiddenUser(identity.name);
    }
    // Admins without ?user= see everyone; everybody else only themselves.
    const user = isAdmin(identity) ? asked : identity.name;
    const checkpoints = await store.listCheckpoints(user === undefined ? {} : { user });
    // What the user's checkpoints hold against their quota (for one user's list only).
    const usage =
      user === undefined ? null : { user, bytes: await blobs.usage(user), quota_bytes: options.quotaBytes ?? null };
    res.json({ checkpoints: checkpoints.map(summaryView), usage });
  });

  router.get('/:id', async (req, res) => {
    const { checkpoint, session } = await visibleCheckpoint(store, String(req.params['id']), res);
    res.json(detailView(checkpoint, session));
  });

  router.post('/:id/restore', async (req, res) => {
    const { checkpoint, session } = await visibleCheckpoint(store, String(req.params['id']), res);
    if (identityOf(res).name !== session.user) {
      // Admins may look, but only the owner decides what goes into their kernels.
      throw new ResumeError('RESUME_ERR_AUTH_FORBIDDEN', 'Only the owner of a checkpoint can restore it.', {
        status: 403,
        context: { checkpointId: checkpoint.id },
      });
    }
    const updated = await store.requestRestore(checkpoint.id);
    logger.info(
      { user: session.user, server: session.server, checkpointId: checkpoint.id },
      'restore requested; it runs when the notebook kernel next starts',
    );
    res.status(202).json(detailView(updated, session));
  });

  router.delete('/:id', async (req, res) => {
    const { checkpoint, session } = await visibleCheckpoint(store, String(req.params['id']), res);
    if (identityOf(res).name !== session.user) {
      throw new ResumeError('RESUME_ERR_AUTH_FORBIDDEN', 'Only the owner of a checkpoint can delete it.', {
        status: 403,
        context: { checkpointId: checkpoint.id },
      });
    }
    await store.deleteCheckpoint(checkpoint.id);
    logger.info({ user: session.user, server: session.server, checkpointId: checkpoint.id }, 'checkpoint deleted by its owner');
    res.status(204).end();
  });

  return router;
}

/** Loads a checkpoint the caller may see; 404 for anything else, so ids of others stay secret. */
async function visibleCheckpoint(
  store: CheckpointStore,
  id: string,
  res: Response,
): Promise<{ checkpoint: Checkpoint; session: KernelSession }> {
  const identity = identityOf(res);
  const checkpoint = await store.getCheckpoint(id);
  const session = checkpoint === null ? null : await store.getSession(checkpoint.sessionId);
  if (checkpoint === null || session === null || (session.user !== identity.name && !isAdmin(identity))) {
    throw new ResumeError('RESUME_ERR_CHECKPOINT_NOT_FOUND', `No checkpoint ${id} among yours.`, {
      status: 404,
      hint: 'GET api/checkpoints lists the checkpoints you can see.',
      context: { user: identity.name },
    });
  }
  return { checkpoint, session };
}

function forbiddenUser(user: string): ResumeError {
  return new ResumeError('RESUME_ERR_AUTH_FORBIDDEN', "Only hub admins can list other users' checkpoints.", {
    status: 403,
    context: { user },
  });
}

/** A checkpoint as lists (and the on-demand checkpoint's answer) show it. */
export function summaryView(c: CheckpointSummary) {
  return {
    id: c.id,
    session_id: c.sessionId,
    user: c.user,
    server: c.server,
    notebook_path: c.notebookPath,
    kernel_name: c.kernelName,
    state: c.state,
    trigger: c.trigger,
    created_at: c.createdAt.toISOString(),
    completed_at: c.completedAt?.toISOString() ?? null,
    bytes_stored: c.bytesStored,
    bytes_reused: c.bytesReused,
    restore_state: c.restoreState,
    error: c.error,
  };
}

function detailView(c: Checkpoint, s: KernelSession) {
  const manifest = (c.manifest ?? {}) as { variables?: unknown; recompute?: unknown };
  const plan = planView(c);
  const report = (c.restoreReport ?? null) as { duration_s?: number } | null;
  return {
    ...summaryView({ ...c, ...s, id: c.id, createdAt: c.createdAt }),
    variables: manifest.variables ?? [],
    recompute: manifest.recompute ?? [],
    cells: c.cells.length,
    plan,
    restore_report: c.restoreReport,
    // After a restore: how long it took against what the plan predicted.
    restore_time: plan === null || report?.duration_s === undefined ? null : { predicted_s: plan.predicted.restoreS, actual_s: report.duration_s },
  };
}

/**
 * The plan the checkpoint followed, each group with what rebuilding it alone would take
 * (`explainReplication` over the checkpoint's own history); the plan as stored if that history no
 * longer matches it (cells ran between planning and checkpointing).
 */
function planView(c: Checkpoint): ReplicationPlan | ExplainedPlan | null {
  if (c.plan === null) return null;
  const plan = c.plan as ReplicationPlan;
  try {
    return explainReplication(HistoryGraph.fromCells(c.cells), plan);
  } catch {
    return plan;
  }
}
