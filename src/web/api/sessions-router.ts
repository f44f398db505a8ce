import express, { type Response } from 'express';
import type { KernelCheckpoints } from '../../checkpoint/kernel-checkpoints.js';
import { ResumeError, isResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { HistoryGraph } from '../../history/history-graph.js';
import type { CheckpointStore, KernelRun, KernelSession } from '../../store/checkpoint-store.js';
import { summaryView } from './checkpoints-router.js';
import { authenticate, type HubIdentities, identityOf, isAdmin, requireServiceAccess } from '../auth/hub-identity.js';

export type SessionsRouterOptions = {
  store: CheckpointStore;
  identities: HubIdentities;
  serviceName: string;
  checkpoints: KernelCheckpoints;
  logger: Logger;
};

/**
 * Kernel sessions (a user's notebook kernels, across restarts and respawns) and their history
 * graphs. Owners see their own; callers with `admin:servers` see everyone's.
 *
 * #### Notes
 * The graph is derived from the cell records every agent streams into Postgres as cells run, so
 * it survives kernel crashes and service restarts without a second copy to keep in step: a
 * request rebuilds it from the session's newest run (whose history starts with the checkpoint it
 * was restored from).
 */
export function sessionsRouter(options: SessionsRouterOptions): express.Router {
  const { store, identities, serviceName, checkpoints, logger } = options;
  const router = express.Router();
  router.use(authenticate(identities), requireServiceAccess(serviceName));

  router.get('/', async (req, res) => {
    const identity = identityOf(res);
    const asked = typeof req.query['user'] === 'string' ? req.query['user'] : undefined;
    if (asked !== undefined && asked !== identity.name && !isAdmin(identity)) {
      throw new ResumeError('RESUME_ERR_AUTH_FORBIDDEN', "Only hub admins can list other users' sessions.", {
        status: 403,
        context: { user: identity.name },
      });
    }
    const user = isAdmin(identity) ? asked : identity.name;
    const sessions = await store.listSessions(user === undefined ? {} : { user });
    res.json({ sessions: sessions.map((s) => sessionView(s, s.latestRun)) });
  });

  router.get('/:id/graph', async (req, res) => {
    const session = await visibleSession(store, String(req.params['id']), res);
    const latest = (await store.listSessions({ id: session.id }))[0]?.latestRun ?? null;
    const cells = latest === null ? [] : await store.historyOfRun(latest.id);
    res.json({ session: sessionView(session, latest), graph: HistoryGraph.fromCells(cells).toJSON() });
  });

  // On demand: save the session's running kernel now (trigger `manual`). Answers when the
  // checkpoint is committed, or with why it could not be (a busy kernel, a full quota, …).
  router.post('/:id/checkpoint', async (req, res) => {
    const session = await visibleSession(store, String(req.params['id']), res);
    const context = { user: session.user, server: session.server, sessionId: session.id };
    const run = (await store.listSessions({ id: session.id }))[0]?.latestRun ?? null;
    const outcome =
      run === null || run.serverUrl === ''
        ? undefined
        : (
            await checkpoints
              .checkpointServer({ user: session.user, name: session.server, url: run.serverUrl }, 'manual', new Set([run.kernelId]))
              .catch(() => [])
          )[0];
    if (outcome === undefined) {
      throw new ResumeError('RESUME_ERR_KERNEL_NOT_RUNNING', `The kernel of ${session.notebookPath} is not running.`, {
        status: 409,
        hint: 'Open the notebook (its kernel registers when it starts), then ask again; its last checkpoint is unchanged.',
        context,
      });
    }
    if (outcome.status === 'busy') {
      throw new ResumeError('RESUME_ERR_KERNEL_BUSY', `The kernel of ${session.notebookPath} is running a cell.`, {
        status: 409,
        hint: 'Ask again once the cell has finished: a checkpoint never interrupts a running cell.',
        context: { ...context, kernelId: outcome.kernelId },
      });
    }
    if (outcome.status === 'failed') {
      // The specific reason (a full quota, an agent that timed out) rather than the runner's wrapper.
      const cause = isResumeError(outcome.error) ? outcome.error.cause : undefined;
      if (isResumeError(cause)) throw cause;
      if (isResumeError(outcome.error)) throw outcome.error;
      throw new ResumeError('RESUME_ERR_CHECKPOINT_FAILED', `Checkpoint of ${session.notebookPath} failed: ${outcome.reason}`, {
        status: 502,
        context: { ...context, kernelId: outcome.kernelId },
      });
    }
    logger.info({ ...context, checkpointId: outcome.checkpoint.id }, 'checkpoint taken on request');
    const c = outcome.checkpoint;
    res.status(201).json(summaryView({ ...c, ...session, id: c.id, createdAt: c.createdAt }));
  });

  return router;
}

/** Loads a session the caller may see; 404 for anything else, so others' ids stay secret. */
async function visibleSession(store: CheckpointStore, id: string, res: Response): Promise<KernelSession> {
  const identity = identityOf(res);
  const session = await store.getSession(id);
  if (session === null || (session.user !== identity.name && !isAdmin(identity))) {
    throw new ResumeError('RESUME_ERR_SESSION_NOT_FOUND', `No kernel session ${id} among yours.`, {
      status: 404,
      hint: 'GET api/sessions lists the sessions you can see.',
      context: { user: identity.name },
    });
  }
  return session;
}

function sessionView(s: KernelSession, latestRun: KernelRun | null) {
  return {
    id: s.id,
    user: s.user,
    server: s.server,
    notebook_path: s.notebookPath,
    kernel_name: s.kernelName,
    created_at: s.createdAt.toISOString(),
    latest_run:
      latestRun === null
        ? null
        : { id: latestRun.id, kernel_id: latestRun.kernelId, started_at: latestRun.startedAt.toISOString() },
  };
}
