import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/log.js';

function capture(): { lines: string[]; write(line: string): void } {
  const lines: string[] = [];
  return { lines, write: (line: string) => void lines.push(line) };
}

describe('createLogger', () => {
  it('never writes tokens, grants, secrets or authorization headers', () => {
    const out = capture();
    const logger = createLogger({ destination: out });
    logger.info(
      {
        user: 'alice',
        token: 'hub-token-123',
        grant: 'eyJgrant',
        config: { apiToken: 'svc-456', grantSecret: 'k'.repeat(32), databaseUrl: 'postgres://u:pw@db/x' },
        req: { headers: { authorization: 'token hub-token-123', cookie: 'session=abc' } },
      },
      'something happened',
    );
    const line = out.lines.join('');
    for (const secret of ['hub-token-123', 'eyJgrant', 'svc-456', 'kkkkkkkk', 'pw@db', 'session=abc']) {
      assert.ok(!line.includes(secret), `${secret} leaked into ${line}`);
    }
    assert.match(line, /"user":"alice"/);
  });

  it('logs URLs without their query strings', () => {
    const out = capture();
    createLogger({ destination: out }).info({ url: '/user/alice/api/kernels?token=abc' }, 'request');
    assert.match(out.lines.join(''), /"url":"\/user\/alice\/api\/kernels"/);
  });
});
