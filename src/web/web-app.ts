import express, { type NextFunction, type Request, type Response } from 'express';
import { isResumeError } from '../errors.js';
import type { Logger } from '../log.js';
import { agentRouter, type AgentRouterOptions } from './api/agent-router.js';
import { checkpointsRouter, type CheckpointsRouterOptions } from './api/checkpoints-router.js';
import { sessionsRouter, type SessionsRouterOptions } from './api/sessions-router.js';

export type WebAppOptions = AgentRouterOptions &
  CheckpointsRouterOptions &
  SessionsRouterOptions & {
    /** The hub's prefix for this service, e.g. `/services/resume/`. */
    prefix: string;
  };

/**
 * The service's HTTP surface, mounted under the hub's service prefix (the proxy does not strip it):
 * `health`, `metrics`, `api/agent/*` for kernels, `api/*` for users.
 */
export function createWebApp(options: WebAppOptions): express.Express {
  const { prefix, logger, metrics } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');

  const root = express.Router();
  root.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  root.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });
  // Each router on its own path, so its authentication runs for its own routes only.
  root.use('/api/agent', agentRouter(options));
  root.use('/api/checkpoints', checkpointsRouter(options));
  root.use('/api/sessions', sessionsRouter(options));
  app.use(prefix.replace(/\/$/, ''), root);

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(
      Object.assign(new Error('not found'), {
        status: 404,
        resume: { code: 'RESUME_ERR_NOT_FOUND', message: `Nothing at ${req.method} ${req.path}.` },
      }),
    );
  });
  app.use(errorHandler(logger));
  return app;
}

/**
 * Answers every error as JSON `{code, message, hint}` with the right status. Expected failures
 * (ResumeError) log one line with their context; anything else is a bug and logs its stack, while
 * the caller only learns that something went wrong on our side.
 */
function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const path = req.path;
    if (isResumeError(err)) {
      const level = err.status >= 500 ? 'error' : 'warn';
      logger[level]({ code: err.code, status: err.status, path, ...err.context }, err.message);
      if (!res.headersSent) res.status(err.status).json(err.toJSON());
      else res.destroy();
      return;
    }
    const e = err as { status?: number; type?: string; resume?: { code: string; message: string } };
    if (e.resume !== undefined) {
      res.status(e.status ?? 404).json(e.resume);
      return;
    }
    // express.json() reports malformed or oversized bodies with a status of 4xx.
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      logger.warn({ path, status: e.status, type: e.type }, 'bad request body');
      res.status(e.status).json({ code: 'RESUME_ERR_REQUEST_INVALID', message: `Bad request body (${e.type ?? 'unreadable'}).` });
      return;
    }
    logger.error({ err, path }, 'unexpected error while handling a request');
    if (!res.headersSent) {
      res.status(500).json({ code: 'RESUME_ERR_INTERNAL', message: 'The service failed unexpectedly; see its log.' });
    } else {
      res.destroy();
    }
  };
}
