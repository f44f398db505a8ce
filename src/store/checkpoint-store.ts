/**
 * Persistence of kernel sessions, their runs, the cells they executed and their checkpoints.
 *
 * Vocabulary:
 * - a *kernel session* is what a user thinks of as "my notebook's kernel": one (user, server name,
 *   notebook path, kernel name). It outlives kernels, servers and nodes.
 * - a *kernel run* is one kernel process of a session (a new one after every restart or respawn),
 *   registered by the agent when it loads.
 * - a *cell record* is one cell the user executed in a run, in order (`seq`).
 * - ids are UUIDs; every `get…` answers `null` for an id that does not exist, malformed ones included,
 *   so callers can pass ids from URLs straight through.
 * - a *checkpoint* saves a run's variables: its blobs are written while it is `writing`; it becomes
 *   `complete` (visible) only in the transaction that verified every blob (DESIGN invariant 1).
 */
import type { Readable } from 'node:stream';

export type CheckpointState = 'writing' | 'complete' | 'failed';
export type CheckpointTrigger = 'cull' | 'manual' | 'verify';
/** What happens to a complete checkpoint at the session's next kernel start. */
export type RestoreState = 'none' | 'pending' | 'claimed' | 'restored' | 'failed';

export type SessionKey = {
  user: string;
  server: string; // '' for the default server
  notebookPath: string;
  kernelName: string;
};

export type KernelSession = SessionKey & { id: string; createdAt: Date };

export type KernelRun = {
  id: string;
  sessionId: string;
  kernelId: string;
  serverUrl: string;
  agentVersion: string;
  startedAt: Date;
  /** The checkpoint this run was restored from, if any: its history precedes this run's cells. */
  restoredFromCheckpointId: string | null;
};

/**
 * The cost facts of one co-variable group after a cell (agent protocol, "Dependency fields",
 * `group_costs`): what storing it in a checkpoint would take, as the agent's fingerprints of its
 * members tell. Inputs to a checkpoint plan's store-or-recompute choice, not guarantees.
 */
export type GroupCost = {
  /**
   * Serialized size in bytes (pickle plus out-of-band buffers). An estimate unless `bytesExact`:
   * usually an over-estimate, since objects the members share are counted once per member; a
   * member whose size is unknown adds 0.
   */
  bytes: number;
  /** True only for a group of one object whose size was measured and is still current. */
  bytesExact: boolean;
  /** False when a member cannot be pickled; it is then listed in `unserializable`. */
  serializable: boolean;
  /** The members pickle cannot save (a generator, a socket, a list holding one), each with why. */
  unserializable: Array<{ name: string; reason: string }>;
};

/** One executed cell, as the agent reports it (docs/reference/agent-protocol.md, `Cell`). */
export type CellRecord = {
  seq: number;
  executionCount: number | null;
  code: string;
  /** The notebook cell's id, when the frontend sent it: where the planner finds the cell's tags. */
  cellId?: string;
  startedAt: Date;
  durationS: number;
  status: 'ok' | 'error';
  error: { ename: string; evalue: string } | null;
  created: string[];
  deleted: string[];
  rebound: string[];
  /*
   * The dependency fields (agent protocol, "Dependency fields"). Optional because records stored
   * before they existed lack them: `cellDependenciesOf` in src/history/cell-record.ts gives every
   * reader the same conservative meaning for a missing field (agent-messages.ts, cellDependencySchema).
   */
  /** User variables (as they were before the cell) the cell may have read. */
  read?: string[];
  /** True when the cell may have read any variable in ways analysis cannot see. */
  readAll?: boolean;
  /** Variables changed in place (same object, different reachable content). */
  modified?: string[];
  /** Co-variable groups, after the cell, of every created, rebound and modified name. */
  groups?: string[][];
  /**
   * The cost facts of each group in `groups`, index by index. Absent when not reported (an older
   * agent, or one that could not work them out): nothing is known about the groups' costs.
   */
  groupCosts?: GroupCost[];
  /** False for a cell whose reads and writes are unknown (rebuilt from IPython's history). */
  effectsKnown?: boolean;
  /** False for a cell whose duration is unknown (rebuilt from IPython's history). */
  timingKnown?: boolean;
};

export type Checkpoint = {
  id: string;
  sessionId: string;
  runId: string;
  state: CheckpointState;
  trigger: CheckpointTrigger;
  createdAt: Date;
  completedAt: Date | null;
  /** The agent's manifest (JSON as the agent sent it), set at commit. */
  manifest: unknown;
  /** The session's whole cell history up to this checkpoint, set at commit. */
  cells: CellRecord[];
  /** The replication plan the checkpoint followed (src/planner), or null (none was made). */
  plan: unknown;
  /** Bytes of the blobs this checkpoint wrote. */
  bytesStored: number;
  /** Bytes of unchanged groups it referenced from earlier checkpoints of the session instead. */
  bytesReused: number;
  error: string | null;
  restoreState: RestoreState;
  restoredIntoRunId: string | null;
  restoreReport: unknown;
};

export type CheckpointSummary = Omit<Checkpoint, 'cells' | 'manifest' | 'plan'> & SessionKey;

/** What a blob must be for a checkpoint to commit: its key, size and checksum from the manifest. */
export type ExpectedBlob = { key: string; bytes: number; sha256: string };

/** Where the bytes of a blob are: the checkpoint that wrote it and its key there. */
export type BlobAddress = { checkpointId: string; key: string };

/**
 * A group the checkpoint did not write because an earlier checkpoint of the same session holds
 * the same bytes (`storedIn`); `bytes` and `sha256` are what the manifest promises.
 */
export type ReusedBlob = ExpectedBlob & { storedIn: BlobAddress };

/** What `CheckpointStore.commitCheckpoint` needs. */
export type CommitCheckpointInput = {
  checkpointId: string;
  manifest: unknown;
  cells: CellRecord[];
  /** Blobs this checkpoint wrote. */
  blobs: ExpectedBlob[];
  /** Groups it references from earlier checkpoints of the session instead. */
  reused?: ReusedBlob[];
  /** The replication plan the checkpoint followed, kept with it for the API's explanation. */
  plan?: unknown;
  restoreOnNextStart: boolean;
};

export interface CheckpointStore {
  /** Finds or creates the session for this key. */
  upsertSession(key: SessionKey): Promise<KernelSession>;
  getSession(id: string): Promise<KernelSession | null>;
  /** Sessions newest first (one user's, or one session, when asked), each with its newest run if any. */
  listSessions(filter: { user?: string; id?: string }): Promise<Array<KernelSession & { latestRun: KernelRun | null }>>;
  createRun(run: Omit<KernelRun, 'id' | 'startedAt'> & { startedAt?: Date }): Promise<KernelRun>;
  getRun(id: string): Promise<KernelRun | null>;
  /** Runs of one server, newest first (used to find a server's kernels and direct URL). */
  listRunsForServer(user: string, server: string): Promise<Array<KernelRun & { session: KernelSession }>>;
  /** Appends records; a `seq` already stored for the run is ignored (idempotent retries). */
  appendCells(runId: string, cells: CellRecord[]): Promise<void>;
  /** The whole history of a run: the cells of the checkpoint it was restored from, then its own. */
  historyOfRun(runId: string): Promise<CellRecord[]>;

  createCheckpoint(input: { sessionId: string; runId: string; trigger: CheckpointTrigger }): Promise<Checkpoint>;
  /**
   * In one transaction: checks that every expected blob is stored with that size and checksum,
   * and that every reused one is a blob of a complete checkpoint of the same session with that
   * size and checksum (recording the reference, which keeps that checkpoint from being deleted),
   * then marks the checkpoint complete with its manifest and history. With `restoreOnNextStart`,
   * it becomes the session's pending restore and any older pending one is superseded.
   * Throws RESUME_ERR_CHECKPOINT_BLOB_MISMATCH (and changes nothing) when a blob is missing or wrong,
   * RESUME_ERR_CHECKPOINT_NOT_WRITING (409) when it is already failed or committed; committing again
   * with the same manifest returns the committed checkpoint (a retry after a lost reply).
   */
  commitCheckpoint(input: CommitCheckpointInput): Promise<Checkpoint>;
  /** Marks a checkpoint that is still `writing` as failed; never touches complete ones. */
  failCheckpoint(checkpointId: string, error: string): Promise<void>;
  getCheckpoint(id: string): Promise<Checkpoint | null>;
  /**
   * The checkpoint without its manifest, cells and plan, with its session's key: what a per-blob
   * request checks (state, run, owner) without loading and parsing the whole history each time.
   */
  getCheckpointSummary(id: string): Promise<CheckpointSummary | null>;
  /** Where blob `key` of a checkpoint really is: itself, or the earlier checkpoint it reuses it from. */
  blobAddress(checkpointId: string, key: string): Promise<BlobAddress>;
  latestCompleteCheckpoint(sessionId: string): Promise<Checkpoint | null>;
  listCheckpoints(filter: { user?: string }): Promise<CheckpointSummary[]>;
  /**
   * Atomically hands the session's pending restore (if any) to one run: `pending` → `claimed`,
   * and, in the same transaction, sets that run's `restoredFromCheckpointId` (its history now
   * starts with the checkpoint's cells). Two kernels of the same notebook starting at once cannot
   * both get it.
   */
  claimPendingRestore(sessionId: string, runId: string): Promise<Checkpoint | null>;
  /**
   * Records a restore's outcome (`restored` or `failed`) and the agent's report. Only a run restored
   * from that checkpoint (by claim, or created with `restoredFromCheckpointId`) may report, and not
   * over another run's claim: RESUME_ERR_RESTORE_NOT_CLAIMED (409) otherwise.
   */
  recordRestoreReport(checkpointId: string, runId: string, ok: boolean, report: unknown): Promise<void>;
  /**
   * Makes a complete checkpoint the session's pending restore again (a user asked to resume it);
   * any other pending checkpoint of the session is superseded (`none`).
   * Throws RESUME_ERR_CHECKPOINT_NOT_COMPLETE (409) for a checkpoint that is not complete.
   */
  requestRestore(checkpointId: string): Promise<Checkpoint>;
}

export type StoredBlob = { key: string; bytes: number; sha256: string };

/** Where checkpoint bytes live. Postgres by default; filesystem and S3 come later. */
export interface BlobStore {
  /**
   * Streams `body` into the blob `key` of a checkpoint, chunk by chunk (a 1 GB array is never one
   * row or one buffer), computing size and sha256 on the way. Replaces an earlier blob with the
   * same key. If the stream fails, nothing is left under that key (and an earlier blob of that key
   * stays as it was). Refused once the checkpoint is no longer `writing`
   * (RESUME_ERR_CHECKPOINT_NOT_WRITING, 409): committed blobs never change. On failure `body` is left
   * unconsumed, not destroyed, so an HTTP handler can still answer.
   */
  write(checkpointId: string, key: string, body: Readable): Promise<StoredBlob>;
  /**
   * Streams a blob back; RESUME_ERR_BLOB_NOT_FOUND if it does not exist. Destroy `body` if you stop
   * reading early.
   */
  read(checkpointId: string, key: string): Promise<{ blob: StoredBlob; body: Readable }>;
  stat(checkpointId: string, key: string): Promise<StoredBlob | null>;
  list(checkpointId: string): Promise<StoredBlob[]>;
  deleteCheckpointBlobs(checkpointId: string): Promise<void>;
  /**
   * Writes `bytes` of incompressible data the way blobs are written, reads them back, removes
   * them, and answers the bandwidths seen (bytes per second): the planner's cost model.
   */
  measureBandwidth(bytes: number): Promise<{ writeBytesPerS: number; readBytesPerS: number }>;
}
