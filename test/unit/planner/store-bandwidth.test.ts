import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ASSUMED_BANDWIDTH, StoreBandwidth } from '../../../src/planner/store-bandwidth.js';

const MB = 1e6;

describe('StoreBandwidth', () => {
  it('starts from the assumption, takes the probe, then moves towards what real transfers show', () => {
    const bandwidth = new StoreBandwidth();
    assert.deepEqual(bandwidth.current(), ASSUMED_BANDWIDTH);
    bandwidth.probed({ writeBytesPerS: 50 * MB, readBytesPerS: 150 * MB });
    assert.deepEqual(bandwidth.current(), { ...ASSUMED_BANDWIDTH, writeBytesPerS: 50 * MB, readBytesPerS: 150 * MB });
    // One blob: 10 s minus its 8 ms is 100 MB/s (to within the per-blob share).
    bandwidth.noteWrite(1000 * MB, 10 + ASSUMED_BANDWIDTH.writeBlobS, 1);
    assert.ok(Math.abs(bandwidth.current().writeBytesPerS - 65 * MB) < 1, String(bandwidth.current().writeBytesPerS));
    bandwidth.noteRead(100 * MB, 0.5 + ASSUMED_BANDWIDTH.readBlobS, 1); // 200 MB/s
    assert.ok(Math.abs(bandwidth.current().readBytesPerS - 165 * MB) < 1, String(bandwidth.current().readBytesPerS));
  });

  it('ignores transfers too small to measure anything', () => {
    const bandwidth = new StoreBandwidth();
    bandwidth.noteWrite(1 * MB, 0.001, 1);
    bandwidth.noteRead(1 * MB, 10, 2);
    bandwidth.noteRead(0, 0, 0);
    assert.deepEqual(bandwidth.current(), ASSUMED_BANDWIDTH);
  });

  it('learns the time per blob from many small blobs, and the bandwidth from big ones net of it', () => {
    const bandwidth = new StoreBandwidth();
    bandwidth.probed({ writeBytesPerS: 100 * MB, readBytesPerS: 200 * MB });
    // 200 blobs of 5 KB took 2 s to write: almost all of it per blob (10 ms), the bytes take 10 ms.
    bandwidth.noteWrite(1 * MB, 2, 200);
    const afterSmall = bandwidth.current();
    assert.equal(afterSmall.writeBytesPerS, 100 * MB, 'a few megabytes say nothing about bandwidth');
    assert.ok(Math.abs(afterSmall.writeBlobS - (0.7 * 0.008 + 0.3 * ((2 - 0.01) / 200))) < 1e-12, String(afterSmall.writeBlobS));
    // Reading 200 small blobs took 1 s: 5 ms each, as assumed; the estimate stays.
    bandwidth.noteRead(1 * MB, 1 + 0.005, 200);
    assert.ok(Math.abs(bandwidth.current().readBlobS - 0.005) < 1e-4);
    // 4 blobs of 250 MB in 10 s: the blobs' share is tiny, the rest is bandwidth; the blob time stays.
    bandwidth.noteWrite(1000 * MB, 10, 4);
    assert.ok(Math.abs(bandwidth.current().writeBytesPerS - (0.7 * 100 * MB + 0.3 * (1000 * MB) / (10 - 4 * afterSmall.writeBlobS))) < 1);
    assert.equal(bandwidth.current().writeBlobS, afterSmall.writeBlobS);
  });

  it('never overwrites what the admin set', () => {
    const bandwidth = new StoreBandwidth({ writeBytesPerS: 10 * MB });
    assert.equal(bandwidth.configured, false);
    bandwidth.probed({ writeBytesPerS: 500 * MB, readBytesPerS: 500 * MB });
    bandwidth.noteWrite(1000 * MB, 1, 1);
    assert.deepEqual(bandwidth.current(), { ...ASSUMED_BANDWIDTH, writeBytesPerS: 10 * MB, readBytesPerS: 500 * MB });
    assert.equal(new StoreBandwidth({ writeBytesPerS: 1, readBytesPerS: 1 }).configured, true);
  });
});
