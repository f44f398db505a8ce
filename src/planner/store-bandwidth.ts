/**
 * How fast the blob store in use writes and reads, for the planner's cost model.
 *
 * Measured, not assumed: a probe against the store at start-up, then every real checkpoint
 * (bytes written ÷ upload time) and every restore (bytes loaded ÷ load time) moves the estimate
 * (an exponentially weighted average, so one slow checkpoint does not swing every plan). A
 * bandwidth the admin set (`RESUME_STORE_WRITE_MBPS` / `RESUME_STORE_READ_MBPS`) is never
 * overwritten. Transfers under 16 MiB are ignored: their time is mostly fixed costs.
 */

export type Bandwidth = { writeBytesPerS: number; readBytesPerS: number };

/** Until the start-up probe answers: roughly embedded Postgres on a small machine (bench/results/roundtrip.json). */
export const ASSUMED_BANDWIDTH: Bandwidth = { writeBytesPerS: 100e6, readBytesPerS: 200e6 };
/** Weight of a new measurement in the running average. */
const WEIGHT = 0.3;
/** Transfers smaller than this say little about bandwidth. */
const MIN_SAMPLE_BYTES = 16 * 1024 * 1024;

export class StoreBandwidth {
  #write: number;
  #read: number;
  readonly #fixed: { write: boolean; read: boolean };

  /** @param configured bandwidths the admin set (bytes per second); they stay as they are. */
  constructor(configured: Partial<Bandwidth> = {}) {
    this.#write = configured.writeBytesPerS ?? ASSUMED_BANDWIDTH.writeBytesPerS;
    this.#read = configured.readBytesPerS ?? ASSUMED_BANDWIDTH.readBytesPerS;
    this.#fixed = { write: configured.writeBytesPerS !== undefined, read: configured.readBytesPerS !== undefined };
  }

  /** The current estimate. */
  current(): Bandwidth {
    return { writeBytesPerS: this.#write, readBytesPerS: this.#read };
  }

  /** Whether both bandwidths were set by the admin (no probe needed). */
  get configured(): boolean {
    return this.#fixed.write && this.#fixed.read;
  }

  /** Takes a start-up probe's result as the estimate (for what the admin did not set). */
  probed(measured: Bandwidth): void {
    if (!this.#fixed.write) this.#write = measured.writeBytesPerS;
    if (!this.#fixed.read) this.#read = measured.readBytesPerS;
  }

  /** A checkpoint wrote `bytes` in `seconds`. */
  noteWrite(bytes: number, seconds: number): void {
    if (!this.#fixed.write && bytes >= MIN_SAMPLE_BYTES && seconds > 0) this.#write = blend(this.#write, bytes / seconds);
  }

  /** A restore read `bytes` in `seconds`. */
  noteRead(bytes: number, seconds: number): void {
    if (!this.#fixed.read && bytes >= MIN_SAMPLE_BYTES && seconds > 0) this.#read = blend(this.#read, bytes / seconds);
  }
}

function blend(previous: number, sample: number): number {
  return (1 - WEIGHT) * previous + WEIGHT * sample;
}
