import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { isResumeError } from '../../../src/errors.js';
import { EmbeddedPostgresServer } from '../../../src/store/postgres/embedded-postgres-server.js';

async function query(url: string, text: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

describe('EmbeddedPostgresServer', () => {
  let dir: string;
  const servers: EmbeddedPostgresServer[] = [];
  const blockers: net.Server[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'resume-embedded-pg-'));
    await chmod(dir, 0o755);
  });

  after(async () => {
    for (const server of servers) await server.stop();
    for (const blocker of blockers) await new Promise((r) => blocker.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  function server(name: string, port = 0): EmbeddedPostgresServer {
    const s = new EmbeddedPostgresServer({ dataDir: path.join(dir, name), port });
    servers.push(s);
    return s;
  }

  it('takes over a data dir whose Postgres an earlier process left running, keeping its data', async () => {
    const earlier = server('shared');
    await earlier.start();
    await query(earlier.url(), "CREATE TABLE kept AS SELECT 'from before' AS note");

    // A new object on the same data dir is what the next run of the demo creates.
    const later = server('shared');
    await later.start();

    assert.deepEqual(await query(later.url(), 'SELECT note FROM kept'), [{ note: 'from before' }]);
    assert.equal(await later.ensureDatabase('demo'), true);
    assert.equal(await later.ensureDatabase('demo'), false, 'found on the next run');
    const deadline = Date.now() + 10_000;
    while (earlier.isRunning) {
      assert.ok(Date.now() < deadline, 'the earlier server noticed that its Postgres exited');
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it('fails to start with the Postgres log in the error when its port is taken', async () => {
    const blocker = net.createServer();
    blockers.push(blocker);
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;

    await assert.rejects(server('blocked', port).start(), (e: unknown) => {
      assert.ok(isResumeError(e));
      assert.equal(e.code, 'RESUME_ERR_STORE_START_FAILED');
      assert.match(e.message, /could not bind|could not create any TCP\/IP sockets/);
      assert.ok(e.hint);
      return true;
    });
  });

  it('refuses a non-empty data dir that holds no cluster', async () => {
    const foreign = path.join(dir, 'foreign');
    await mkdir(foreign);
    await writeFile(path.join(foreign, 'notes.txt'), 'not a database');

    await assert.rejects(server('foreign').start(), { code: 'RESUME_ERR_STORE_DATA_DIR_INVALID' });
  });

  it('has no URL before it has started', () => {
    assert.throws(() => server('unstarted').url(), { code: 'RESUME_ERR_STORE_NOT_STARTED' });
  });
});
