import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ASSUMED_BANDWIDTH, StoreBandwidth } from '../../../src/planner/store-bandwidth.js';

const MB = 1e6;

describe('StoreBandwidth', () => {
  it('starts from the assumption, takes the probe, then moves towards what real transfers show', () => {
    const bandwidth = new StoreBandwidth();
    assert.deepEqual(bandwidth.current(), ASSUMED_BANDWIDTH);
    bandwidth.probed({ writeBytesPerS: 50 * MB, readBytesPerS: 150 * MB });
    assert.deepEqual(bandwidth.current(), { writeBytesPerS: 50 * MB, readBytesPerS: 150 * MB });
    bandwidth.noteWrite(1000 * MB, 10); // 100 MB/s
    assert.equal(bandwidth.current().writeBytesPerS, 65 * MB);
    bandwidth.noteRead(100 * MB, 0.5); // 200 MB/s
    assert.equal(bandwidth.current().readBytesPerS, 165 * MB);
  });

  it('ignores transfers too small to measure anything', () => {
    const bandwidth = new StoreBandwidth();
    bandwidth.noteWrite(1 * MB, 0.001);
    bandwidth.noteRead(1 * MB, 10);
    assert.deepEqual(bandwidth.current(), ASSUMED_BANDWIDTH);
  });

  it('never overwrites what the admin set', () => {
    const bandwidth = new StoreBandwidth({ writeBytesPerS: 10 * MB });
    assert.equal(bandwidth.configured, false);
    bandwidth.probed({ writeBytesPerS: 500 * MB, readBytesPerS: 500 * MB });
    bandwidth.noteWrite(1000 * MB, 1);
    assert.deepEqual(bandwidth.current(), { writeBytesPerS: 10 * MB, readBytesPerS: 500 * MB });
    assert.equal(new StoreBandwidth({ writeBytesPerS: 1, readBytesPerS: 1 }).configured, true);
  });
});
