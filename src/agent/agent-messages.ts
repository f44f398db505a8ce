/**
 * The messages of the agent protocol (docs/reference/agent-protocol.md, version 1) as zod schemas:
 * the commands the service sends into a kernel and what the agent answers, plus the records the
 * agent posts over HTTP (`Cell`, `RestoreReport`).
 *
 * Objects are parsed loosely (unknown fields are kept): a manifest goes back to an agent verbatim
 * at restore, so nothing a newer agent adds may be lost on the way through the service.
 */
import { z } from 'zod';

/** The protocol version this client speaks. */
export const AGENT_PROTOCOL_VERSION = 1;

/** Where checkpoint blobs are written to or read from. */
export const targetSchema = z.discriminatedUnion('kind', [
  z.looseObject({ kind: z.literal('http'), url: z.string().min(1), grant: z.string().min(1) }),
  z.looseObject({ kind: z.literal('dir'), path: z.string().min(1) }),
]);
/** A blob location (see `targetSchema`). */
export type Target = z.infer<typeof targetSchema>;

/**
 * The dependency fields of a cell record (agent protocol, "Dependency fields", issue 3), with the
 * meaning of a record that lacks them: a record from an agent older than issue 3, or one stored
 * before the service kept them.
 *
 * #### Notes
 * The defaults are the conservative reading, because the history graph may over-approximate but
 * never miss a dependency (a missed one makes a recompute plan rebuild a wrong value):
 * - `read_all: true`: an old agent did not say what a cell read, so it may have read anything.
 * - `effects_known: false`: an old agent reported created, rebound and deleted names but never
 *   in-place changes (`l.append(1)`), so its writes are not fully known either. The history graph
 *   then treats the cell as possibly modifying every variable that existed before it.
 * - `timing_known: true`: every agent has measured `duration_s`.
 * - `read`, `modified`, `groups`: empty; with the two flags above they add nothing. A written name
 *   that no group lists is taken to be alone in its group.
 * Each field defaults on its own, so a record with only some of them stays conservative too.
 */
export const cellDependencySchema = z.object({
  read: z.array(z.string()).default(() => []),
  read_all: z.boolean().default(true),
  modified: z.array(z.string()).default(() => []),
  groups: z.array(z.array(z.string())).default(() => []),
  effects_known: z.boolean().default(false),
  timing_known: z.boolean().default(true),
});
/** The dependency fields of a cell record, defaults applied (see `cellDependencySchema`). */
export type CellDependencyFields = z.infer<typeof cellDependencySchema>;

/**
 * The cost facts of one co-variable group (agent protocol, "Dependency fields", `group_costs`): what
 * storing the group in a checkpoint would take, from its members' cached fingerprints.
 */
export const groupCostSchema = z.looseObject({
  /** Serialized size (pickle plus out-of-band buffers): an estimate unless `bytes_exact`; unknown sizes add 0. */
  bytes: z.number().int().nonnegative(),
  /** True only for a group of one object whose size was measured and is current. */
  bytes_exact: z.boolean(),
  /** False when a member cannot be pickled (then it is listed in `unserializable`). */
  serializable: z.boolean(),
  /** The members pickle cannot save, and why (the reason names what failed, e.g. a generator). */
  unserializable: z.array(z.looseObject({ name: z.string(), reason: z.string() })),
});
/** A group's cost facts (see `groupCostSchema`). */
export type AgentGroupCost = z.infer<typeof groupCostSchema>;

/**
 * One executed cell, as the agent records it (dependency fields default as `cellDependencySchema` says).
 *
 * #### Notes
 * `group_costs` has no default: absent means "not reported" (an older agent, or one that could not
 * work them out). When present it is aligned index by index with `groups`, so the lengths must match.
 */
export const cellSchema = z
  .looseObject({
    seq: z.number().int().nonnegative(),
    execution_count: z.number().int().nullable(),
    code: z.string(),
    /** The notebook cell's id (JupyterLab sends it with each execution); null or absent when unknown. */
    cell_id: z.string().min(1).nullish(),
    started_at: z.string(),
    duration_s: z.number().nonnegative(),
    status: z.enum(['ok', 'error']),
    error: z.looseObject({ ename: z.string(), evalue: z.string() }).nullable(),
    created: z.array(z.string()),
    deleted: z.array(z.string()),
    rebound: z.array(z.string()),
    ...cellDependencySchema.shape,
    group_costs: z.array(groupCostSchema).optional(),
  })
  .superRefine((cell, ctx) => {
    if (cell.group_costs !== undefined && cell.group_costs.length !== cell.groups.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['group_costs'],
        message:
          `has ${cell.group_costs.length} entries but groups has ${cell.groups.length}: ` +
          'group_costs must hold one entry per group, in the order of groups',
      });
    }
  });
/** A cell record (see `cellSchema`). */
export type Cell = z.infer<typeof cellSchema>;

const blobKeySchema = z.string().regex(/^[a-z0-9-]{1,64}$/);

/**
 * One serialized group of variables that share objects (one blob). With `stored_in`, the group
 * did not change since an earlier checkpoint of the session and its blob is that checkpoint's
 * blob `stored_in.key` (never itself a reference).
 */
export const manifestGroupSchema = z.looseObject({
  key: blobKeySchema,
  names: z.array(z.string()).min(1),
  serializer: z.enum(['pickle', 'dill']),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  stored_in: z.looseObject({ checkpoint_id: z.string().min(1), key: blobKeySchema }).optional(),
});
/** A manifest group (see `manifestGroupSchema`). */
export type ManifestGroup = z.infer<typeof manifestGroupSchema>;

/** What a checkpoint saved and how each variable comes back. */
export const manifestSchema = z.looseObject({
  checkpoint_id: z.string().min(1),
  protocol: z.number().int(),
  execution_count: z.number().int().nonnegative(),
  groups: z.array(manifestGroupSchema),
  imports: z.array(z.looseObject({ name: z.string(), module: z.string() })),
  recompute: z.array(z.looseObject({ name: z.string(), type: z.string(), reason: z.string() })),
  variables: z.array(
    z.looseObject({ name: z.string(), type: z.string(), how: z.enum(['stored', 'import', 'recompute']) }),
  ),
  timings: z.looseObject({ serialize_s: z.number(), upload_s: z.number() }),
});
/** A checkpoint manifest (see `manifestSchema`). */
export type Manifest = z.infer<typeof manifestSchema>;

/** How each variable came back after a restore. */
export const restoreReportSchema = z.looseObject({
  checkpoint_id: z.string().min(1),
  duration_s: z.number().nonnegative(),
  execution_count: z.number().int().nonnegative(),
  variables: z.array(
    z.looseObject({
      name: z.string(),
      status: z.enum(['stored', 'recomputed', 'imported', 'failed']),
      error: z.string().optional(),
    }),
  ),
  /** A restore by plan: each re-run cell (history index) and its error, if any. */
  rerun: z.array(z.looseObject({ index: z.number().int(), error: z.string().nullable() })).optional(),
  /** A restore by plan: how long reading the stored groups and re-running cells took. */
  timings: z
    .looseObject({
      load_s: z.number().nonnegative(),
      rerun_s: z.number().nonnegative(),
      bytes_loaded: z.number().int().nonnegative(),
      /** Groups loaded (absent from agents before it was added). */
      blobs_loaded: z.number().int().nonnegative().optional(),
    })
    .optional(),
});
/** A restore report (see `restoreReportSchema`). */
export type RestoreReport = z.infer<typeof restoreReportSchema>;

/** Fingerprints of every user variable and which names are bound to the same object. */
export const descriptionSchema = z.looseObject({
  variables: z.array(z.looseObject({ name: z.string(), type: z.string(), fingerprint: z.string().nullable() })),
  aliases: z.array(z.array(z.string())),
});
/** A `describe` answer (see `descriptionSchema`). */
export type Description = z.infer<typeof descriptionSchema>;

/** Answer to `status`. */
export const agentStatusSchema = z.looseObject({
  protocol: z.number().int(),
  agent_version: z.string(),
  run_id: z.string().nullable(),
  kernel_id: z.string().nullable(),
  cells_recorded: z.number().int().nonnegative(),
  records_pending: z.number().int().nonnegative(),
});
/** A `status` answer (see `agentStatusSchema`). */
export type AgentStatus = z.infer<typeof agentStatusSchema>;

/** Answer to `flush`. */
export const flushResultSchema = z.looseObject({ records_pending: z.number().int().nonnegative() });
/** A `flush` answer (see `flushResultSchema`). */
export type FlushResult = z.infer<typeof flushResultSchema>;

/** Answer to `history`. */
export const historySchema = z.looseObject({ cells: z.array(cellSchema) });

/** Answer of a command that failed inside the agent (it answers instead of raising). */
export const agentErrorSchema = z.looseObject({
  error: z.looseObject({ type: z.string(), message: z.string(), hint: z.string().optional() }),
});

/** Which history cells a restore re-runs and where it binds each group (agent protocol, "Restore"). */
export type RestorePlan = {
  /** History indices (positions in the restore's `cells`) of the cells to re-run, in execution order. */
  rerun: number[];
  /** Manifest group key → the history index after which the group is bound (-1: before any re-run). */
  load_after: Record<string, number>;
  /** Manifest group key → history indices that rebuild the group if its blob cannot be loaded. */
  fallback: Record<string, number[]>;
};

/** The session's last complete checkpoint, sent with `checkpoint` so unchanged groups are not written again. */
export type CheckpointBase = { checkpoint_id: string; groups: ManifestGroup[] };

/** A command the service sends to the agent. */
export type AgentRequest =
  | { op: 'status' }
  | { op: 'flush'; timeout_s: number }
  | { op: 'history' }
  | { op: 'checkpoint'; checkpoint_id: string; target: Target; recompute?: string[]; base?: CheckpointBase }
  | { op: 'restore'; manifest: Manifest; cells: Cell[]; source: Target; plan?: RestorePlan }
  | { op: 'describe' };
