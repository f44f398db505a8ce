import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cronExpression } from '../../../src/lifecycle/periodic-task.js';
import { formatSeconds, shouldCull, userLastActivity } from '../../../src/culler/cull-policy.js';
import type { HubServer } from '../../../src/hub/hub-client.js';

const T0 = new Date('2026-11-21T12:00:00Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);

function server(overrides: Partial<HubServer> = {}): HubServer {
  return { user: 'alice', name: '', ready: true, pending: null, url: '/user/alice/', started: T0, lastActivity: T0, ...overrides };
}

describe('shouldCull', () => {
  it('culls a server idle for at least the timeout', () => {
    assert.equal(shouldCull(server(), at(600), 600).cull, true);
    assert.equal(shouldCull(server(), at(599), 600).cull, false);
  });

  it('never culls a pending or not-ready server', () => {
    assert.equal(shouldCull(server({ pending: 'spawn' }), at(9999), 600).cull, false);
    assert.equal(shouldCull(server({ ready: false }), at(9999), 600).cull, false);
  });

  it('falls back to the start time when the hub has no activity', () => {
    assert.equal(shouldCull(server({ lastActivity: null }), at(700), 600).cull, true);
  });

  it("does not count the service's own touch as user activity", () => {
    // The user was last active at T0; the service checkpointed at T0+600..T0+610 and failed, and the
    // hub now reports the checkpoint as activity. The next round must still see 620 s of idleness.
    const touched = server({ lastActivity: at(605) });
    const touch = { from: at(600), to: at(610), lastActivityBefore: T0 };
    const decision = shouldCull(touched, at(620), 600, touch);
    assert.equal(decision.cull, true);
    assert.equal(Math.round(decision.idleS), 620);
  });

  it('keeps seeing the user’s idleness across rounds that each touched the server', () => {
    // Round 1 touched at 600-610 (the hub then reports 605); round 2 touches again at 900-910 and
    // must remember T0, not 605, or round 3 would see the server as freshly active.
    const round1 = { from: at(600), to: at(610), lastActivityBefore: T0 };
    const seenInRound2 = server({ lastActivity: at(605) });
    const round2 = { from: at(900), to: at(910), lastActivityBefore: userLastActivity(seenInRound2, round1) };
    const seenInRound3 = server({ lastActivity: at(905) });
    assert.equal(shouldCull(seenInRound3, at(1200), 600, round2).cull, true);
    assert.equal(Math.round(shouldCull(seenInRound3, at(1200), 600, round2).idleS), 1200);
  });

  it('counts activity after a touch as the user’s', () => {
    const touch = { from: at(600), to: at(610), lastActivityBefore: T0 };
    assert.equal(shouldCull(server({ lastActivity: at(700) }), at(720), 600, touch).cull, false);
  });

  it('explains its decision with the inactivity', () => {
    assert.match(shouldCull(server(), at(3725), 600).reason, /inactive for 1:02:05/);
    assert.equal(formatSeconds(59), '0:00:59');
  });
});

describe('cronExpression', () => {
  it('uses the seconds field below a minute and coarser fields above', () => {
    assert.equal(cronExpression(10), '*/10 * * * * *');
    assert.equal(cronExpression(300), '0 */5 * * * *');
    assert.equal(cronExpression(7200), '0 0 */2 * * *');
  });

  it('rounds a period down to one that divides its unit, so rounds stay evenly spaced', () => {
    assert.equal(cronExpression(45), '*/30 * * * * *');
    assert.equal(cronExpression(7 * 60), '0 */6 * * * *');
    assert.equal(cronExpression(7 * 3600), '0 0 */6 * * *');
  });
});
