import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isResumeError, type ResumeError } from '../../../src/errors.js';
import { mapPgError } from '../../../src/store/postgres/map-pg-error.js';
import { createPool, redactDatabaseUrl, withClient, withTransaction } from '../../../src/store/postgres/pool.js';
import { startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function everythingSaid(e: ResumeError): string {
  return JSON.stringify({ message: e.message, hint: e.hint, context: e.context, json: e.toJSON() });
}

describe('pool', () => {
  let postgres: StartedPostgres;

  before(async () => {
    postgres = await startPostgres();
  });

  after(async () => {
    await postgres?.stop();
  });

  it('maps a refused connection to RESUME_ERR_STORE_UNAVAILABLE and never repeats the password', async () => {
    const pool = createPool(`postgresql://resume:s3cret-pw@127.0.0.1:${await closedPort()}/resume`);
    try {
      await assert.rejects(withClient(pool, (c) => c.query('SELECT 1')), (e: unknown) => {
        assert.ok(isResumeError(e));
        assert.equal(e.code, 'RESUME_ERR_STORE_UNAVAILABLE');
        assert.equal(e.status, 503);
        assert.ok(e.hint);
        assert.match(String(e.context['database']), /^127\.0\.0\.1:\d+\/resume$/);
        assert.ok(!everythingSaid(e).includes('s3cret-pw'));
        return true;
      });
    } finally {
      await pool.end();
    }
  });

  it('maps a wrong password and a missing database by their SQLSTATE', async () => {
    const url = new URL(postgres.url);
    url.password = 'wrong';
    const badPassword = createPool(url.toString());
    const noDatabase = createPool(postgres.server.url('no_such_database'));
    try {
      await assert.rejects(withClient(badPassword, (c) => c.query('SELECT 1')), { code: 'RESUME_ERR_STORE_AUTH_FAILED' });
      await assert.rejects(withClient(noDatabase, (c) => c.query('SELECT 1')), { code: 'RESUME_ERR_STORE_DATABASE_MISSING' });
    } finally {
      await badPassword.end();
      await noDatabase.end();
    }
  });

  it('maps a unique violation to RESUME_ERR_STORE_CONFLICT', async () => {
    await postgres.pool.query('CREATE TABLE pool_test_unique (k text PRIMARY KEY)');
    await postgres.pool.query("INSERT INTO pool_test_unique VALUES ('a')");
    const failure = await postgres.pool.query("INSERT INTO pool_test_unique VALUES ('a')").catch((e: unknown) => e);
    const mapped = mapPgError(failure);
    assert.ok(isResumeError(mapped));
    assert.equal(mapped.code, 'RESUME_ERR_STORE_CONFLICT');
    assert.equal(mapped.status, 409);
    assert.equal(mapped.context['constraint'], 'pool_test_unique_pkey');
    assert.equal(mapped.cause, failure);
  });

  it('returns errors it cannot classify unchanged', () => {
    const bug = new TypeError('a bug');
    assert.equal(mapPgError(bug), bug);
  });

  it('rolls a transaction back when the work throws', async () => {
    await postgres.pool.query('CREATE TABLE pool_test_tx (n integer)');
    await assert.rejects(
      withTransaction(postgres.pool, async (client) => {
        await client.query('INSERT INTO pool_test_tx VALUES (1)');
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    const { rows } = await postgres.pool.query('SELECT count(*)::int AS n FROM pool_test_tx');
    assert.equal(rows[0].n, 0);
  });

  it('turns a connection killed mid-query into RESUME_ERR_STORE_UNAVAILABLE and does not reuse it', async () => {
    const pool = createPool(postgres.url, { max: 1 });
    try {
      let pid = 0;
      const sleeping = withClient(pool, async (client) => {
        pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0;
        return client.query('SELECT pg_sleep(30)');
      });
      const outcome = sleeping.catch((e: unknown) => e);
      const deadline = Date.now() + 10_000;
      // Wait until the victim is really inside pg_sleep before killing it.
      for (;;) {
        const { rows } = await postgres.pool.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'", [pid]);
        if (rows.length > 0) break;
        assert.ok(Date.now() < deadline, 'the query started');
        await new Promise((r) => setTimeout(r, 10));
      }
      await postgres.pool.query('SELECT pg_terminate_backend($1)', [pid]);

      const error = await outcome;
      assert.ok(isResumeError(error));
      assert.equal(error.code, 'RESUME_ERR_STORE_UNAVAILABLE');
      // The only slot of the pool works again with a new connection.
      const { rows } = await withClient(pool, (c) => c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'));
      assert.notEqual(rows[0]?.pid, pid);
    } finally {
      await pool.end();
    }
  });

  it('refuses a URL that is not postgres:// without echoing it', () => {
    assert.throws(
      () => createPool('mysql://root:hunter2@db/x'),
      (e: unknown) => isResumeError(e) && e.code === 'RESUME_ERR_STORE_URL_INVALID' && !everythingSaid(e).includes('hunter2'),
    );
    assert.throws(() => createPool('not a url with hunter2'), { code: 'RESUME_ERR_STORE_URL_INVALID' });
  });

  it('redacts the password of a database URL', () => {
    assert.equal(redactDatabaseUrl('postgresql://resume:hunter2@db:5432/resume?sslmode=require'), 'postgresql://resume:***@db:5432/resume');
    assert.equal(redactDatabaseUrl('postgresql://db/resume'), 'postgresql://db/resume');
  });
});
