import { pipeline } from 'node:stream/promises';
import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { cellSchema, restoreReportSchema } from '../../agent/agent-messages.js';
import type { KernelCheckpoints } from '../../checkpoint/kernel-checkpoints.js';
import type { StoreBandwidth } from '../../planner/store-bandwidth.js';
import type { RestoreHandout } from '../../restore/restore-handout.js';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { BlobStore, CheckpointStore, KernelRun } from '../../store/checkpoint-store.js';
import { toCellRecord } from '../../history/cell-record.js';
import type { BlobGrants } from '../auth/blob-grants.js';
import { authenticate, type HubIdentities, identityOf, requireServerToken, tokenFromHeader } from '../auth/hub-identity.js';
import type { ServiceMetrics } from '../service-metrics.js';
import { parseBody } from '../parse-body.js';

const PROTOCOL_VERSION = 1;

const registerKernelSchema = z.object({
  protocol: z.number().int(),
  agent_version: z.string().max(64),
  // The agent sends "" for what it could not find out (agent-protocol.md): accept it.
  kernel_id: z.string().max(128),
  kernel_name: z.string().max(256),
  notebook_path: z.string().max(4096),
  server_url: z.union([z.literal(''), z.url()]),
  python_version: z.string().max(64).optional(),
  started_at: z.iso.datetime().optional(),
  /** The agent will post `runs/<id>/ended` when its kernel exits normally (so a run that never does died). */
  reports_end: z.boolean().optional(),
});

const cellsSchema = z.object({ cells: z.array(cellSchema).max(10_000) });

/** Blob keys are names the agent picks; keep them boring so they are safe anywhere they are stored. */
const BLOB_KEY = /^[a-z0-9-]{1,64}$/;

export type AgentRouterOptions = {
  store: CheckpointStore;
  blobs: BlobStore;
  grants: BlobGrants;
  identities: HubIdentities;
  restores: RestoreHandout;
  checkpoints: KernelCheckpoints;
  /** Learns the blob store's read bandwidth from restore reports (for the planner). */
  bandwidth?: StoreBandwidth;
  metrics: ServiceMetrics;
  logger: Logger;
};

/**
 * The HTTP API the in-kernel agent calls (docs/reference/agent-protocol.md): kernel registration
 * (which may hand out a restore), cell records, restore reports, and checkpoint blobs.
 *
 * Registration and records authenticate with the user server's own hub token, so a kernel can only
 * write into its own user's and server's sessions; blobs authenticate with a grant bound to one
 * checkpoint.
 */
export function agentRouter(options: AgentRouterOptions): express.Router {
  const { store, blobs, grants, identities, restores, checkpoints, metrics, logger } = options;
  const router = express.Router();
  const withServerToken = [authenticate(identities), requireServerToken];

  router.post('/kernels', ...withServerToken, express.json({ limit: '64kb' }), async (req, res) => {
    const body = parseBody(registerKernelSchema, req.body);
    if (body.protocol !== PROTOCOL_VERSION) {
      throw new ResumeError(
        'RESUME_ERR_AGENT_PROTOCOL_MISMATCH',
        `The agent speaks protocol ${body.protocol}; this service speaks ${PROTOCOL_VERSION}.`,
        { status: 400, hint: 'Use the agent shipped with this version of jupyterhub-resume.' },
      );
    }
    const identity = identityOf(res);
    const session = await store.upsertSession({
      user: identity.name,
      server: identity.server ?? '',
      notebookPath: body.notebook_path,
      kernelName: body.kernel_name,
    });
    const run = await store.createRun({
      sessionId: session.id,
      kernelId: body.kernel_id,
      serverUrl: body.server_url,
      agentVersion: body.agent_version,
      restoredFromCheckpointId: null,
      reportsEnd: body.reports_end === true,
    });
    const restore = await restores.handOut(session, run);
    logger.info(
      {
        user: session.user,
        server: session.server,
        kernelId: run.kernelId,
        runId: run.id,
        notebook: session.notebookPath,
        checkpointId: restore?.checkpoint_id,
      },
      restore === null ? 'kernel registered' : 'kernel registered; restore handed out',
    );
    res.json({ run_id: run.id, restore });
  });

  router.post('/runs/:runId/cells', ...withServerToken, express.json({ limit: '16mb' }), async (req, res) => {
    const run = await ownRun(store, req, res);
    const body = parseBody(cellsSchema, req.body);
    await store.appendCells(run.id, body.cells.map(toCellRecord));
    metrics.cellsRecorded.inc(body.cells.length);
    res.status(204).end();
  });

  // The kernel is exiting normally (a restart, a shutdown): its next kernel starts empty unless a
  // checkpoint is pending. A run that never posts this died, and its successor recovers it.
  router.post('/runs/:runId/ended', ...withServerToken, async (req, res) => {
    const run = await ownRun(store, req, res);
    await store.endRun(run.id);
    logger.debug({ runId: run.id, kernelId: run.kernelId }, 'kernel exited normally');
    res.status(204).end();
  });

  router.post('/runs/:runId/restore-report', ...withServerToken, express.json({ limit: '4mb' }), async (req, res) => {
    const run = await ownRun(store, req, res);
    const report = parseBody(restoreReportSchema, req.body);
    const failed = report.variables.filter((v) => v.status === 'failed').map((v) => v.name);
    await store.recordRestoreReport(report.checkpoint_id, run.id, failed.length === 0, report);
    metrics.restores.inc({ status: failed.length === 0 ? 'ok' : 'partial' });
    metrics.restoreDuration.observe(report.duration_s);
    const timings = report.timings;
    // (An agent that does not count blobs says too little: its time could be bytes or blobs.)
    if (timings?.blobs_loaded !== undefined) options.bandwidth?.noteRead(timings.bytes_loaded, timings.load_s, timings.blobs_loaded);
    const context = { runId: run.id, kernelId: run.kernelId, checkpointId: report.checkpoint_id };
    if (failed.length === 0) logger.info({ ...context, seconds: report.duration_s }, 'restore completed');
    else logger.warn({ ...context, failed }, 'restore completed with variables that could not be restored');
    res.status(204).end();
  });

  // preStop: the calling server is being stopped (a Kubernetes preStop hook, a SIGTERM handler);
  // save every idle kernel of it now, as `prestop` checkpoints that its next start restores.
  // Answers once every kernel is saved or failed, so the hook can wait for it.
  router.post('/server/checkpoint', ...withServerToken, async (_req, res) => {
    const identity = identityOf(res);
    const serverName = identity.server ?? '';
    const serverUrl = (await store.listRunsForServer(identity.name, serverName))[0]?.serverUrl ?? '';
    const context = { user: identity.name, server: serverName };
    if (serverUrl === '') {
      logger.info(context, 'pre-stop checkpoint: no kernel of this server ever registered; nothing to save');
      res.json({ kernels: [] });
      return;
    }
    const outcomes = await checkpoints.checkpointServer({ user: identity.name, name: serverName, url: serverUrl }, 'prestop');
    const failed = outcomes.filter((o) => o.status !== 'complete');
    logger[failed.length === 0 ? 'info' : 'warn'](
      { ...context, kernels: outcomes.length, failed: failed.map((o) => o.kernelId) },
      'pre-stop checkpoint done',
    );
    res.json({
      kernels: outcomes.map((o) => ({
        kernel_id: o.kernelId,
        status: o.status,
        ...(o.status === 'complete' ? { checkpoint_id: o.checkpoint.id } : {}),
        ...(o.status === 'failed' ? { reason: o.reason } : {}),
      })),
    });
  });

  router.put('/checkpoints/:checkpointId/blobs/:key', async (req, res) => {
    const token = grantOf(req); // 401 before anything else: no hints for callers without a grant
    const { checkpointId, key } = blobAddress(req);
    const grant = grants.verify(token, { checkpointId, action: 'upload' });
    const checkpoint = await store.getCheckpointSummary(checkpointId);
    // Only the run the grant was issued to may write, and only while the checkpoint is being written.
    if (checkpoint === null || checkpoint.runId !== grant.runId) throw notFound(checkpointId);
    if (checkpoint.state !== 'writing') {
      throw new ResumeError('RESUME_ERR_CHECKPOINT_CLOSED', `Checkpoint ${checkpointId} is ${checkpoint.state}.`, {
        status: 409,
        hint: 'Blobs can only be uploaded while a checkpoint is being written.',
        context: { checkpointId, user: grant.user },
      });
    }
    const stored = await blobs.write(checkpointId, key, req);
    metrics.bytesUploaded.inc(stored.bytes);
    res.json({ key: stored.key, bytes: stored.bytes, sha256: stored.sha256 });
  });

  router.get('/checkpoints/:checkpointId/blobs/:key', async (req, res) => {
    const token = grantOf(req); // 401 before anything else: no hints for callers without a grant
    const { checkpointId, key } = blobAddress(req);
    const grant = grants.verify(token, { checkpointId, action: 'download' });
    // The summary, not the checkpoint: this runs once per blob, and a long history is a big row.
    const checkpoint = await store.getCheckpointSummary(checkpointId);
    // A blob is only ever loaded into a kernel of the user who owns it (DESIGN invariant 5).
    if (checkpoint === null || checkpoint.user !== grant.user || checkpoint.state !== 'complete') {
      throw notFound(checkpointId);
    }
    // An unchanged group of an incremental checkpoint is listed under this checkpoint too (the
    // session's content, whichever checkpoint wrote it).
    const { blob, body } = await blobs.read(checkpointId, key);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(blob.bytes));
    res.setHeader('X-Resume-Sha256', blob.sha256);
    // pipeline, not pipe: a client that goes away must also close the store's stream (a file
    // handle, an S3 socket, a database cursor).
    try {
      await pipeline(body, res);
    } catch (e) {
      if (res.destroyed && !res.writableFinished && (e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
        logger.debug({ checkpointId, key }, 'the client stopped reading a blob');
      } else {
        logger.error({ err: e, checkpointId, key }, 'blob stream failed half way');
      }
    }
  });

  return router;
}

/** The run named in the path, if it belongs to the calling server's user; 404 otherwise. */
async function ownRun(store: CheckpointStore, req: Request, res: Response): Promise<KernelRun> {
  const runId = String(req.params['runId']);
  const identity = identityOf(res);
  const run = await store.getRun(runId);
  const session = run === null ? null : await store.getSession(run.sessionId);
  if (run === null || session === null || session.user !== identity.name || session.server !== identity.server) {
    // 404, not 403: whether another user's run exists is none of the caller's business.
    throw new ResumeError('RESUME_ERR_RUN_NOT_FOUND', `No kernel run ${runId} for this server.`, {
      status: 404,
      hint: 'The agent registers a run when it loads; restart the kernel if it was registered with another service.',
      context: { user: identity.name, runId },
    });
  }
  return run;
}

function blobAddress(req: Request): { checkpointId: string; key: string } {
  const checkpointId = String(req.params['checkpointId']);
  const key = String(req.params['key']);
  if (!BLOB_KEY.test(key)) {
    throw new ResumeError('RESUME_ERR_BLOB_BAD_ADDRESS', 'A blob key is 1 to 64 characters of [a-z0-9-].', {
      status: 400,
    });
  }
  return { checkpointId, key };
}

function grantOf(req: Request): string {
  const grant = tokenFromHeader(req);
  if (grant === null) {
    throw new ResumeError('RESUME_ERR_AUTH_MISSING_TOKEN', 'Blob requests need a grant.', {
      status: 401,
      hint: 'Send the grant the service issued in "Authorization: Bearer <grant>".',
    });
  }
  return grant;
}

function notFound(checkpointId: string): ResumeError {
  return new ResumeError('RESUME_ERR_CHECKPOINT_NOT_FOUND', `No checkpoint ${checkpointId} for this grant.`, {
    status: 404,
    context: { checkpointId },
  });
}
