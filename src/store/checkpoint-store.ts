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
import type { ObjectStore } from './object-store.js';

export type CheckpointState = 'writing' | 'complete' | 'failed';
/**
 * Why a checkpoint was taken: `cull` (before an idle server is stopped), `periodic` (in the
 * background, after a kernel was active and then idle), `manual` (a user asked, through the API),
 * `prestop` (the user's own server asked while being stopped: a Kubernetes preStop hook, SIGTERM),
 * `verify` (the CLI's round trip), `recovery` (put together at a kernel start because the
 * session's previous kernel died with cells no checkpoint has: the last checkpoint, if any, plus
 * re-running the cells recorded after it).
 */
export const CHECKPOINT_TRIGGERS = ['cull', 'periodic', 'manual', 'prestop', 'verify', 'recovery'] as const;
export type CheckpointTrigger = (typeof CHECKPOINT_TRIGGERS)[number];
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
  /** The agent will report the kernel's normal exit (`endRun`); a run that never does died. */
  reportsEnd?: boolean;
  /** When the kernel exited normally, as its agent reported; null while running, or if it died. */
  endedAt?: Date | null;
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

/** How many checkpoints a session keeps, and for how long (RESUME_KEEP_CHECKPOINTS, RESUME_KEEP_DAYS). */
export type RetentionPolicy = {
  /** The newest this many complete checkpoints of a session are kept (at least 1). */
  keepLast: number;
  /** Checkpoints completed longer ago than this are deleted, however few are left. */
  maxAgeS: number;
};

/** What `CheckpointStore.commitCheckpoint` needs. */
export type CommitCheckpointInput = {
  checkpointId: string;
  manifest: unknown;
  cells: CellRecord[];
  /** Blobs this checkpoint wrote. */
  blobs: ExpectedBlob[];
  /** Groups it did not write because the session already holds their bytes (an earlier checkpoint wrote them). */
  reused?: ExpectedBlob[];
  /** The replication plan the checkpoint followed, kept with it for the API's explanation. */
  plan?: unknown;
  restoreOnNextStart: boolean;
  /** Applied to the session in the same transaction: older checkpoints go as this one arrives. */
  retention?: RetentionPolicy;
  /**
   * The most bytes the user's checkpoints may hold, counted after retention with this one in
   * (distinct blobs). Over it, the commit is refused and nothing changes.
   */
  quotaBytes?: number;
  /** The clock retention ages checkpoints by (the service's; tests travel in time). */
  now?: Date;
};

export interface CheckpointStore {
  /** Finds or creates the session for this key. */
  upsertSession(key: SessionKey): Promise<KernelSession>;
  getSession(id: string): Promise<KernelSession | null>;
  /** Sessions newest first (one user's, or one session, when asked), each with its newest run if any. */
  listSessions(filter: { user?: string; id?: string }): Promise<Array<KernelSession & { latestRun: KernelRun | null }>>;
  createRun(run: Omit<KernelRun, 'id' | 'startedAt'> & { startedAt?: Date }): Promise<KernelRun>;
  getRun(id: string): Promise<KernelRun | null>;
  /** Records that a run's kernel exited normally (idempotent: the first report counts). */
  endRun(id: string): Promise<void>;
  /** The run of the session that started last before `runId`, or null. */
  previousRun(sessionId: string, runId: string): Promise<KernelRun | null>;
  /** Runs of one server, newest first (used to find a server's kernels and direct URL). */
  listRunsForServer(user: string, server: string): Promise<Array<KernelRun & { session: KernelSession }>>;
  /**
   * The newest run of each session that ran cells after the session's last checkpoint (of any
   * outcome: a failed one is not retried until more cells run) and has recorded none since
   * `idleSince`: what background checkpoints save.
   */
  runsIdleSince(idleSince: Date): Promise<Array<KernelRun & { session: KernelSession; lastCellAt: Date }>>;
  /** Appends records; a `seq` already stored for the run is ignored (idempotent retries). */
  appendCells(runId: string, cells: CellRecord[]): Promise<void>;
  /** The whole history of a run: the cells of the checkpoint it was restored from, then its own. */
  historyOfRun(runId: string): Promise<CellRecord[]>;

  createCheckpoint(input: { sessionId: string; runId: string; trigger: CheckpointTrigger }): Promise<Checkpoint>;
  /**
   * In one transaction: checks that every expected blob is stored with that size and checksum,
   * and that the session holds the bytes of every reused one (listing them for this checkpoint),
   * then marks the checkpoint complete with its manifest and history. With `restoreOnNextStart`,
   * it becomes the session's pending restore and any older pending one is superseded. Then
   * applies `retention` to the session and checks the user's `quotaBytes`.
   * Throws RESUME_ERR_CHECKPOINT_BLOB_MISMATCH (and changes nothing) when a blob is missing or wrong,
   * RESUME_ERR_QUOTA_EXCEEDED (507, nothing changes: the previous checkpoint stays),
   * RESUME_ERR_CHECKPOINT_NOT_WRITING (409) when it is already failed or committed; committing again
   * with the same manifest returns the committed checkpoint (a retry after a lost reply).
   */
  commitCheckpoint(input: CommitCheckpointInput): Promise<Checkpoint>;
  /**
   * Marks a checkpoint that is still `writing` as failed and, in the same transaction, unlists its
   * blobs (garbage from then on); never touches complete ones.
   */
  failCheckpoint(checkpointId: string, error: string): Promise<void>;
  getCheckpoint(id: string): Promise<Checkpoint | null>;
  /**
   * The checkpoint without its manifest, cells and plan, with its session's key: what a per-blob
   * request checks (state, run, owner) without loading and parsing the whole history each time.
   */
  getCheckpointSummary(id: string): Promise<CheckpointSummary | null>;
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
  /**
   * Deletes one checkpoint (a user no longer wants it); its blobs go at the next garbage collection.
   * Throws RESUME_ERR_CHECKPOINT_IN_USE (409) for the checkpoint the session's newest run was
   * restored from or is restoring, and for one still being written.
   */
  deleteCheckpoint(checkpointId: string): Promise<void>;
  /**
   * Applies the retention policy to every session (commits apply it to their own session; this
   * catches sessions nobody checkpoints any more).
   * @returns the ids of the deleted checkpoints.
   */
  pruneCheckpoints(policy: RetentionPolicy, now?: Date): Promise<string[]>;
  /**
   * Marks checkpoints still `writing` that began before `startedBefore` as failed: their writer
   * died (a service restart, a crash). Their blobs become garbage.
   * @returns the ids of the checkpoints marked failed.
   */
  failAbandonedCheckpoints(startedBefore: Date): Promise<string[]>;
}

export type StoredBlob = { key: string; bytes: number; sha256: string };

/** What one garbage collection removed. */
export type GarbageReport = {
  /** Blobs no checkpoint listed any more (their rows and objects). */
  blobs: number;
  bytes: number;
  /** Objects in the object store the catalog did not know (a crash between writing and cataloguing). */
  orphanObjects: number;
  /** Leftovers of interrupted object writes (temp files, unfinished multipart uploads, rows). */
  incompleteWrites: number;
};

/**
 * The blobs of checkpoints: each group of variables a checkpoint stores is one blob.
 *
 * Blobs are content-addressed per session: a group whose bytes a session already holds is stored
 * once, whichever checkpoints list it, and garbage collection removes a blob once no checkpoint
 * lists it. The catalog (which checkpoint lists which content, and where its bytes are) is in
 * Postgres; the bytes are in an ObjectStore (Postgres, a directory or S3).
 */
export interface BlobStore {
  /** Where the bytes are. */
  readonly objects: ObjectStore;
  /**
   * Streams `body` into group `key` of a checkpoint that is still `writing`, computing size and
   * sha256 on the way. Bytes the session already holds are not kept twice. Writing a key again
   * replaces what the checkpoint lists under it. If the stream fails, the checkpoint lists nothing
   * new under that key. On failure `body` is left unconsumed, not destroyed, so an HTTP handler
   * can still answer.
   * @throws ResumeError RESUME_ERR_BLOB_KEY_INVALID (400), RESUME_ERR_CHECKPOINT_NOT_FOUND (404),
   *   RESUME_ERR_CHECKPOINT_NOT_WRITING (409: committed blobs never change),
   *   RESUME_ERR_BLOB_UPLOAD_ABORTED (400), RESUME_ERR_STORE_UNAVAILABLE (503).
   */
  write(checkpointId: string, key: string, body: Readable): Promise<StoredBlob>;
  /**
   * Streams group `key` of a checkpoint back (written by it, or listed from an earlier checkpoint
   * of the session). Destroy `body` if you stop reading early.
   * @throws ResumeError RESUME_ERR_BLOB_NOT_FOUND (404).
   */
  read(checkpointId: string, key: string): Promise<{ blob: StoredBlob; body: Readable }>;
  stat(checkpointId: string, key: string): Promise<StoredBlob | null>;
  /** The groups a checkpoint lists, by key. */
  list(checkpointId: string): Promise<StoredBlob[]>;
  /**
   * Unlists every group of a checkpoint that is not complete (a failed or abandoned one); the
   * bytes go at the next garbage collection. A complete checkpoint's groups are never unlisted.
   */
  deleteCheckpointBlobs(checkpointId: string): Promise<void>;
  /**
   * Removes blobs no checkpoint lists, objects the catalog does not know, and what interrupted
   * writes left behind. Uploads in progress are never touched; leftovers of writes begun less than
   * `abandonedAfterS` ago are left for the next round (their writer may still finish).
   */
  collectGarbage(options: { abandonedAfterS: number; now?: Date }): Promise<GarbageReport>;
  /** Bytes of the distinct blobs a user's complete checkpoints list (what their quota counts). */
  usage(user: string): Promise<number>;
  /**
   * Writes `bytes` of incompressible data the way blobs are written, reads them back, removes
   * them, and answers the bandwidths seen (bytes per second): the planner's cost model.
   */
  measureBandwidth(bytes: number): Promise<{ writeBytesPerS: number; readBytesPerS: number }>;
}
