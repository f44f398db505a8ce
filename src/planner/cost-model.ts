/**
 * What storing and what recomputing a co-variable group costs, in seconds (ElasticNotebook §5.2).
 *
 * Storing a group of `bytes` costs `α · (bytes / write bandwidth + per-blob write time)` (at
 * checkpoint time) plus `bytes / read bandwidth + per-blob read time` (at restore time);
 * recomputing it costs the recorded run times of the cells it needs, all at restore time. The
 * per-blob times are ours, not the paper's (which writes one file): each stored group is one blob,
 * one HTTP request and one Postgres transaction, and a notebook of 200 small values pays that 200
 * times (bench/results/planner.json, `typical`). α weighs checkpoint time against restore time:
 * 1 counts them alike (migration-centric), 0.05 mostly minds the restore (restore-centric).
 *
 * #### Notes
 * The wording puts α on the read term; its labels (restore-centric 0.05) only make sense
 * with α on the write term, as in ElasticNotebook's code (`migration_speed_bps`), so that is what
 * this model does. The default is restore-centric: a checkpoint runs while the user is away (the
 * server is idle, or being culled), a restore while they wait for their notebook.
 */

/** How fast the blob store in use moves bytes and blobs, and the weight of checkpoint time. */
export type CostModel = {
  /** Bytes per second a checkpoint writes to the blob store. */
  writeBytesPerS: number;
  /** Bytes per second a restore reads back. */
  readBytesPerS: number;
  /** Fixed seconds per blob a checkpoint writes, whatever its size (request, transaction). */
  writeBlobS: number;
  /** Fixed seconds per blob a restore reads. */
  readBlobS: number;
  /** Weight of checkpoint (write) time against restore time; see the module doc. */
  alpha: number;
  /**
   * Seconds assumed for a cell whose run time was not measured (rebuilt from IPython's history):
   * large, so that such a cell is re-run only when nothing else works.
   */
  unknownRuntimeS: number;
};

/** Restore-centric: see the module doc. */
export const DEFAULT_ALPHA = 0.05;
/** An hour: re-running a cell of unknown duration is a last resort. */
export const DEFAULT_UNKNOWN_RUNTIME_S = 3600;

/** Seconds to write one blob of `bytes` at checkpoint time and to read it back at restore time. */
export function transferSeconds(bytes: number, model: CostModel): { writeS: number; readS: number } {
  return { writeS: bytes / model.writeBytesPerS + model.writeBlobS, readS: bytes / model.readBytesPerS + model.readBlobS };
}

/** The weighted cost of storing a group of `bytes` (one blob): α · write + read. */
export function storeCostS(bytes: number, model: CostModel): number {
  const { writeS, readS } = transferSeconds(bytes, model);
  return model.alpha * writeS + readS;
}

/** What re-running a cell costs: its recorded duration, or the stand-in when it was not measured. */
export function rerunCostS(cell: { durationS: number; timingKnown: boolean }, model: CostModel): number {
  return cell.timingKnown ? cell.durationS : model.unknownRuntimeS;
}
