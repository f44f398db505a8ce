/**
 * How fast the blob store in use writes and reads, for the planner's cost model: bytes per second,
 * and a fixed time per blob (one request and one transaction per stored group, whatever its size).
 *
 * Measured, not assumed: a probe against the store at start-up gives the bandwidths, then every
 * real checkpoint (bytes and blobs written, upload time) and every restore (bytes and blobs
 * loaded, load time) moves the estimates (exponentially weighted averages, so one slow checkpoint
 * does not swing every plan). A transfer of many bytes says how fast bytes move, once the per-blob
 * share of its time is taken out; a transfer of many blobs says what a blob costs, once the bytes'
 * share is taken out. A bandwidth the admin set (`RESUME_STORE_WRITE_MBPS` /
 * `RESUME_STORE_READ_MBPS`) is never overwritten; the per-blob times are always learned.
 */

export type Bandwidth = {
  writeBytesPerS: number;
  readBytesPerS: number;
  /** Fixed seconds per blob written. */
  writeBlobS: number;
  /** Fixed seconds per blob read. */
  readBlobS: number;
};

/**
 * Until measurements arrive: embedded Postgres through the service on a small machine
 * (bench/results/roundtrip.json for bytes, bench/results/planner.json `typical` for blobs).
 */
export const ASSUMED_BANDWIDTH: Bandwidth = { writeBytesPerS: 100e6, readBytesPerS: 200e6, writeBlobS: 0.008, readBlobS: 0.005 };
/** Weight of a new measurement in the running average. */
const WEIGHT = 0.3;
/** Transfers smaller than this say little about bandwidth. */
const MIN_SAMPLE_BYTES = 16 * 1024 * 1024;
/** Transfers of fewer blobs than this say little about the per-blob time. */
const MIN_SAMPLE_BLOBS = 8;

type Direction = { bytesPerS: number; blobS: number; bytesFixed: boolean };

export class StoreBandwidth {
  readonly #write: Direction;
  readonly #read: Direction;

  /** @param configured bandwidths the admin set (bytes per second); they stay as they are. */
  constructor(configured: Partial<Pick<Bandwidth, 'writeBytesPerS' | 'readBytesPerS'>> = {}) {
    this.#write = {
      bytesPerS: configured.writeBytesPerS ?? ASSUMED_BANDWIDTH.writeBytesPerS,
      blobS: ASSUMED_BANDWIDTH.writeBlobS,
      bytesFixed: configured.writeBytesPerS !== undefined,
    };
    this.#read = {
      bytesPerS: configured.readBytesPerS ?? ASSUMED_BANDWIDTH.readBytesPerS,
      blobS: ASSUMED_BANDWIDTH.readBlobS,
      bytesFixed: configured.readBytesPerS !== undefined,
    };
  }

  /** The current estimate. */
  current(): Bandwidth {
    return {
      writeBytesPerS: this.#write.bytesPerS,
      readBytesPerS: this.#read.bytesPerS,
      writeBlobS: this.#write.blobS,
      readBlobS: this.#read.blobS,
    };
  }

  /** Whether both bandwidths were set by the admin (no probe needed). */
  get configured(): boolean {
    return this.#write.bytesFixed && this.#read.bytesFixed;
  }

  /** Takes a start-up probe's bandwidths as the estimate (for what the admin did not set). */
  probed(measured: Pick<Bandwidth, 'writeBytesPerS' | 'readBytesPerS'>): void {
    if (!this.#write.bytesFixed) this.#write.bytesPerS = measured.writeBytesPerS;
    if (!this.#read.bytesFixed) this.#read.bytesPerS = measured.readBytesPerS;
  }

  /** A checkpoint wrote `blobs` blobs of `bytes` in all in `seconds`. */
  noteWrite(bytes: number, seconds: number, blobs: number): void {
    learn(this.#write, bytes, seconds, blobs);
  }

  /** A restore read `blobs` blobs of `bytes` in all in `seconds`. */
  noteRead(bytes: number, seconds: number, blobs: number): void {
    learn(this.#read, bytes, seconds, blobs);
  }
}

/**
 * Moves one direction's estimates by a transfer's time `bytes / bytesPerS + blobs · blobS`: each
 * part only when it is at least half of the time (otherwise what is left over is mostly the other
 * part's error).
 */
function learn(direction: Direction, bytes: number, seconds: number, blobs: number): void {
  if (!(seconds > 0) || blobs <= 0) return;
  const forBytes = seconds - blobs * direction.blobS;
  if (!direction.bytesFixed && bytes >= MIN_SAMPLE_BYTES && forBytes >= seconds / 2) {
    direction.bytesPerS = blend(direction.bytesPerS, bytes / forBytes);
  }
  const forBlobs = seconds - bytes / direction.bytesPerS;
  if (blobs >= MIN_SAMPLE_BLOBS && forBlobs >= seconds / 2) direction.blobS = blend(direction.blobS, forBlobs / blobs);
}

function blend(previous: number, sample: number): number {
  return (1 - WEIGHT) * previous + WEIGHT * sample;
}
