/**
 * Cell records and their dependency fields: the agent's JSON, the stored record, and what a
 * record without the fields (an older agent, an older row) means.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cellSchema } from '../../../src/agent/agent-messages.js';
import { cellDependenciesOf, toAgentCell, toCellRecord } from '../../../src/history/cell-record.js';
import type { CellRecord } from '../../../src/store/checkpoint-store.js';

const base = {
  seq: 4,
  execution_count: 4,
  code: 'l1.append(4)',
  started_at: '2026-11-21T19:30:04.000Z',
  duration_s: 0.002,
  status: 'ok',
  error: null,
  created: [],
  deleted: [],
  rebound: [],
} as const;

const conservative = { read: [], readAll: true, modified: [], groups: [], effectsKnown: false, timingKnown: true };

describe('cell records', () => {
  it('reads a current agent\'s dependency fields into camelCase and back', () => {
    const agentJson = {
      ...base,
      read: ['l1'],
      read_all: false,
      modified: ['dlist', 'l1'],
      groups: [['dlist', 'l1']],
      effects_known: true,
      timing_known: true,
    };
    const record = toCellRecord(cellSchema.parse(agentJson));
    assert.deepEqual(cellDependenciesOf(record), {
      read: ['l1'],
      readAll: false,
      modified: ['dlist', 'l1'],
      groups: [['dlist', 'l1']],
      effectsKnown: true,
      timingKnown: true,
    });
    assert.deepEqual(toAgentCell(record), agentJson);
  });

  it('gives a record from an agent without dependency fields the conservative defaults', () => {
    const parsed = cellSchema.parse(base);
    assert.deepEqual(
      [parsed.read, parsed.read_all, parsed.modified, parsed.groups, parsed.effects_known, parsed.timing_known],
      [[], true, [], [], false, true],
    );
    assert.deepEqual(cellDependenciesOf(toCellRecord(parsed)), conservative);
  });

  it('defaults each missing field on its own', () => {
    const parsed = cellSchema.parse({ ...base, read: ['l1'], effects_known: true });
    assert.deepEqual(cellDependenciesOf(toCellRecord(parsed)), { ...conservative, read: ['l1'], effectsKnown: true });
  });

  it('gives a stored record without dependency fields the same defaults, also when sent back to an agent', () => {
    const stored: CellRecord = {
      seq: 1,
      executionCount: 1,
      code: 'x = 1',
      startedAt: new Date('2026-11-21T19:30:00.000Z'),
      durationS: 0.001,
      status: 'ok',
      error: null,
      created: ['x'],
      deleted: [],
      rebound: [],
    };
    assert.deepEqual(cellDependenciesOf(stored), conservative);
    const agentCell = toAgentCell(stored);
    assert.deepEqual(cellSchema.parse(agentCell), agentCell);
    assert.equal(agentCell.read_all, true);
    assert.equal(agentCell.effects_known, false);
  });

  describe('group costs', () => {
    const generatorGroup = {
      bytes: 96,
      bytes_exact: false,
      serializable: false,
      unserializable: [{ name: 'gen', reason: "TypeError: cannot pickle 'generator' object" }],
    };
    const withCosts = {
      ...base,
      read: ['nums'],
      read_all: false,
      modified: ['gen', 'nums'],
      groups: [['gen', 'nums']],
      group_costs: [generatorGroup],
      effects_known: true,
      timing_known: true,
    };

    it('reads a group\'s cost facts into camelCase and back', () => {
      const record = toCellRecord(cellSchema.parse(withCosts));
      assert.deepEqual(record.groupCosts, [
        {
          bytes: 96,
          bytesExact: false,
          serializable: false,
          unserializable: [{ name: 'gen', reason: "TypeError: cannot pickle 'generator' object" }],
        },
      ]);
      assert.deepEqual(toAgentCell(record), withCosts);
    });

    it('keeps a record without them without them: not reported is not "no costs"', () => {
      const record = toCellRecord(cellSchema.parse(base));
      assert.equal('groupCosts' in record, false);
      assert.equal('group_costs' in toAgentCell(record), false);
    });

    it('refuses costs that are not one entry per group, saying so', () => {
      const result = cellSchema.safeParse({ ...withCosts, group_costs: [generatorGroup, generatorGroup] });
      assert.equal(result.success, false);
      const issue = result.error?.issues[0];
      assert.deepEqual(issue?.path, ['group_costs']);
      assert.match(issue?.message ?? '', /has 2 entries but groups has 1: group_costs must hold one entry per group/);
    });

    it('refuses costs of a record that reports no groups', () => {
      const { groups: _groups, ...withoutGroups } = withCosts;
      assert.equal(cellSchema.safeParse(withoutGroups).success, false);
    });
  });

  it('never shares a default list between records', () => {
    const first = cellSchema.parse(base);
    first.read.push('x');
    assert.deepEqual(cellSchema.parse(base).read, []);
  });
});
