import express, { type Response } from 'express';
import { ResumeError } from '../../errors.js';
import { HistoryGraph } from '../../history/history-graph.js';
import type { CheckpointStore, KernelRun, KernelSession } from '../../store/checkpoint-store.js';
import { authenticate, type HubIdentities, identityOf, isAdmin, requireServiceAccess } from '../auth/hub-identity.js';

export type SessionsRouterOptions = {
  store: CheckpointStore;
  identities: HubIdentities;
  serviceName: string;
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
  const { store, identities, serviceName } = options;
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
