/**
 * A local kernel as the benchmark uses it: the agent loaded at start (exactly as the hub's
 * kernelspec does it), plus a small helper module for the measurements the agent does not make
 * itself (fingerprints, the pickle and dill baselines).
 *
 * The helper lives in `sys.modules['_jhr_bench']`, never in the user's namespace: the agent
 * does not see it as a variable, `dill.dump_module` does not save it, and it is driven by silent
 * executes, so it never enters the recorded history either.
 */
import { dirname } from 'node:path';
import { z } from 'zod';
import { AgentClient } from '../src/agent/agent-client.js';
import { AGENT_SOURCE_DIR } from '../src/agent/agent-injection.js';
import { ResumeError } from '../src/errors.js';
import type { ExecuteResult } from '../src/jupyter/kernel-channel.js';
import { LocalKernel } from '../src/jupyter/local-kernel.js';

/** Deadline of one cell or helper call: generous, the notebook is a gigabyte. */
const CALL_TIMEOUT_MS = 600_000;

/**
 * The helper module's source. Each public function returns `Answer`, whose `_repr_json_` lets
 * the value come back as the user expression's `application/json` (as agent commands do).
 * numpy, pandas and dill are imported here, before any clock starts, in every kernel alike:
 * restores and the dill load then measure moving data, not importing libraries.
 */
const HELPER_SOURCE = String.raw`
import hashlib, os, pickle, sys, time, types
import numpy as np
import pandas as pd
import dill
from IPython import get_ipython


class Answer:
    def __init__(self, value):
        self.value = value

    def _repr_json_(self):
        return self.value

    def __repr__(self):
        return "<bench answer>"


def _ns():
    return get_ipython().user_ns


def _sha256(array):
    # Exact content check at memory speed (hashlib releases the GIL; SHA extensions where present).
    data = np.ascontiguousarray(array)
    return hashlib.sha256(memoryview(data).cast("B")).hexdigest()


def _fingerprint(value):
    if isinstance(value, types.ModuleType):
        return {"type": "module", "module": value.__name__}
    if isinstance(value, np.ndarray):
        return {"type": "ndarray", "dtype": str(value.dtype), "shape": list(value.shape), "sha256": _sha256(value)}
    if isinstance(value, pd.DataFrame):
        index = value.index
        return {
            "type": "DataFrame",
            "shape": list(value.shape),
            "columns": [str(c) for c in value.columns],
            "dtypes": [str(d) for d in value.dtypes],
            "index": repr(index) if isinstance(index, pd.RangeIndex) else _sha256(index.to_numpy()),
            "sha256": [_sha256(value[c].to_numpy()) for c in value.columns],
        }
    return {"type": type(value).__name__, "repr": repr(value)}


def fingerprint(names):
    ns = _ns()
    return Answer({name: (_fingerprint(ns[name]) if name in ns else None) for name in names})


def sizes(names):
    ns = _ns()
    out = {}
    for name in names:
        value = ns[name]
        if isinstance(value, types.ModuleType):
            out[name] = 0
        elif isinstance(value, np.ndarray):
            out[name] = int(value.nbytes)
        elif isinstance(value, pd.DataFrame):
            out[name] = int(value.memory_usage(deep=True).sum())
        else:
            out[name] = len(pickle.dumps(value, protocol=5))
    return Answer(out)


def _write_all(path, data):
    with open(path, "wb", buffering=0) as handle:
        view = memoryview(data).cast("B")
        written = 0
        while written < view.nbytes:
            written += handle.write(view[written:])


def pickle_baseline(names, path):
    ns = _ns()
    values = {name: ns[name] for name in names}
    t0 = time.perf_counter()
    data = pickle.dumps(values, protocol=5)
    t1 = time.perf_counter()
    _write_all(path, data)
    t2 = time.perf_counter()
    size = len(data)
    del data, values
    os.unlink(path)  # dropped at once, so its dirty pages are never written back under later runs
    return Answer({"dumps_s": t1 - t0, "write_s": t2 - t1, "total_s": t2 - t0, "bytes": size})


def dill_dump(path):
    t0 = time.perf_counter()
    dill.dump_module(path)
    t1 = time.perf_counter()
    return Answer({"dump_s": t1 - t0, "bytes": os.path.getsize(path), "protocol": dill.settings["protocol"]})


def dill_load(path):
    t0 = time.perf_counter()
    dill.load_module(path)
    t1 = time.perf_counter()
    return Answer({"load_s": t1 - t0})


def agent_cell():
    # The agent's own view of the last user cell (None in a kernel without the agent).
    agent = getattr(sys.modules.get("jupyterhub_resume_agent"), "_agent", None)
    if agent is None:
        return Answer({"no_agent": True})
    recorder = agent.recorder
    records = recorder.records
    last = records[-1] if records else {}
    return Answer({
        "hook_s": recorder.last_hook_s,
        "cell_s": last.get("duration_s"),
        "read": len(last.get("read") or []),
        "modified": len(last.get("modified") or []),
        "read_all": bool(last.get("read_all")),
    })


def versions():
    return Answer({
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "dill": dill.__version__,
    })
`;

/** Installs HELPER_SOURCE as a module, without touching the user's namespace. */
const INSTALL_HELPER = `import sys as _s, types as _t
_m = _t.ModuleType("_jhr_bench")
exec(compile(${JSON.stringify(HELPER_SOURCE)}, "<jhr-bench>", "exec"), _m.__dict__)
_s.modules["_jhr_bench"] = _m
del _s, _t, _m`;

/** What `fingerprint` returns: one entry per name (null when the name is missing). */
export const fingerprintSchema = z.record(z.string(), z.unknown());
/** A fingerprint of named variables. */
export type Fingerprint = z.infer<typeof fingerprintSchema>;

const sizesSchema = z.record(z.string(), z.number().int().nonnegative());
const pickleBaselineSchema = z.object({
  dumps_s: z.number(),
  write_s: z.number(),
  total_s: z.number(),
  bytes: z.number().int(),
});
/** One pickle.dumps + write run, timed inside the kernel. */
export type PickleBaselineRun = z.infer<typeof pickleBaselineSchema>;
const dillDumpSchema = z.object({ dump_s: z.number(), bytes: z.number().int(), protocol: z.number().int() });
const dillLoadSchema = z.object({ load_s: z.number() });
const agentCellSchema = z
  .union([
    z.object({
      hook_s: z.number(),
      cell_s: z.number().nullable(),
      read: z.number().int(),
      modified: z.number().int(),
      read_all: z.boolean(),
    }),
    z.object({ no_agent: z.literal(true) }),
  ])
  .transform((v) => ('no_agent' in v ? null : v));
/** The agent's view of the last user cell: seconds in its two hooks, the cell's own duration. */
export type AgentCell = z.infer<typeof agentCellSchema>;
const versionsSchema = z.object({ python: z.string(), numpy: z.string(), pandas: z.string(), dill: z.string() });

/** A started kernel with the agent and the helper: `BenchKernel.start()`, then `shutdown()`. */
export class BenchKernel {
  /** A client for the agent inside this kernel. */
  readonly agent: AgentClient;

  private constructor(readonly kernel: LocalKernel) {
    this.agent = new AgentClient(kernel.channel, { timeoutMs: CALL_TIMEOUT_MS });
  }

  /**
   * Starts a kernel with `--ext=jupyterhub_resume_agent` and the agent on PYTHONPATH, and no
   * service URL: the agent records in memory and only calls out when a command names an `http`
   * target (the bench creates sessions and runs in the store itself).
   * @param track called with the kernel as soon as it runs, so a failure later still shuts it down.
   * @param options `agent: false` starts a plain ipykernel (no `--ext`), for overhead baselines;
   *   the helper module is installed all the same.
   */
  static async start(track: (kernel: BenchKernel) => void, options: { agent?: boolean } = {}): Promise<BenchKernel> {
    const kernel = await LocalKernel.start({
      extraArgs: options.agent === false ? [] : ['--ext=jupyterhub_resume_agent'],
      env: { JUPYTERHUB_RESUME_URL: undefined, PYTHONPATH: dirname(AGENT_SOURCE_DIR) },
    });
    const bench = new BenchKernel(kernel);
    track(bench);
    await bench.silent(INSTALL_HELPER);
    return bench;
  }

  /** The kernel's process id (for CPU accounting). */
  get pid(): number {
    return this.kernel.pid;
  }

  /** The kernel id (also the run's `kernel_id` in the store). */
  get kernelId(): string {
    return this.kernel.kernelId;
  }

  /** Runs a cell as a user would (recorded by the agent, in the history). Throws if it raises. */
  async runCell(code: string): Promise<void> {
    const result = await this.kernel.channel.execute(code, { timeoutMs: CALL_TIMEOUT_MS });
    if (result.status !== 'ok') throw benchCallFailed(code, result);
  }

  /** Fingerprints (type, shape, sha256 of the data, repr of small values) of the named variables. */
  async fingerprint(names: readonly string[]): Promise<Fingerprint> {
    return this.call(`fingerprint(${JSON.stringify(names)})`, fingerprintSchema);
  }

  /** Bytes in memory of each named variable (small values: the size of their pickle). */
  async sizes(names: readonly string[]): Promise<Record<string, number>> {
    return this.call(`sizes(${JSON.stringify(names)})`, sizesSchema);
  }

  /** `pickle.dumps({name: value}, protocol=5)` of the named variables, then writing it to `path`. */
  async pickleBaseline(names: readonly string[], path: string): Promise<PickleBaselineRun> {
    return this.call(`pickle_baseline(${JSON.stringify(names)}, ${JSON.stringify(path)})`, pickleBaselineSchema);
  }

  /** `dill.dump_module(path)`: the whole `__main__` namespace, as `dill.dump_session` did. */
  async dillDump(path: string): Promise<z.infer<typeof dillDumpSchema>> {
    return this.call(`dill_dump(${JSON.stringify(path)})`, dillDumpSchema);
  }

  /** `dill.load_module(path)` into this kernel's `__main__`. */
  async dillLoad(path: string): Promise<z.infer<typeof dillLoadSchema>> {
    return this.call(`dill_load(${JSON.stringify(path)})`, dillLoadSchema);
  }

  /** The agent's hook time and view of the last user cell; null in a kernel without the agent. */
  async agentCell(): Promise<AgentCell> {
    return this.call('agent_cell()', agentCellSchema);
  }

  /** Versions of Python and the libraries the notebook uses, as the kernel sees them. */
  async versions(): Promise<z.infer<typeof versionsSchema>> {
    return this.call('versions()', versionsSchema);
  }

  /** Stops the kernel and removes its files. Idempotent, never throws. */
  shutdown(): Promise<void> {
    return this.kernel.shutdown();
  }

  private async silent(code: string): Promise<void> {
    const result = await this.kernel.channel.execute(code, { silent: true, storeHistory: false, timeoutMs: CALL_TIMEOUT_MS });
    if (result.status !== 'ok') throw benchCallFailed('installing the helper module', result);
  }

  /** Evaluates `_jhr_bench.<call>` as a silent user expression and validates its JSON value. */
  private async call<S extends z.ZodType>(call: string, schema: S): Promise<z.infer<S>> {
    const result = await this.kernel.channel.execute('', {
      silent: true,
      storeHistory: false,
      userExpressions: { r: `__import__('_jhr_bench').${call}` },
      timeoutMs: CALL_TIMEOUT_MS,
    });
    const value = result.userExpressions['r'];
    if (result.status !== 'ok' || value === undefined) throw benchCallFailed(call, result);
    if (value.status === 'error') {
      throw new ResumeError('RESUME_ERR_BENCH_KERNEL_CALL', `${call} raised ${value.ename}: ${value.evalue}`, {
        hint: 'The benchmark notebook or its helper is broken; the traceback is in the kernel.',
      });
    }
    const parsed = schema.safeParse(value.data['application/json']);
    if (!parsed.success) {
      throw new ResumeError('RESUME_ERR_BENCH_KERNEL_CALL', `${call} answered something unexpected: ${parsed.error.message}`);
    }
    return parsed.data;
  }
}

function benchCallFailed(what: string, result: ExecuteResult): ResumeError {
  const why = result.error ? `${result.error.ename}: ${result.error.evalue}` : `the kernel answered ${result.status}`;
  return new ResumeError('RESUME_ERR_BENCH_KERNEL_CALL', `${what.slice(0, 120)} failed: ${why}`, {
    hint: 'The benchmark notebook or its helper is broken; the traceback is in the kernel.',
  });
}
