/**
 * The `jupyterhub-resume` command line (commander): `serve` runs the hub service
 * (serve-command.ts), `verify` checks a notebook's checkpoint/restore round trip without a hub.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { isResumeError } from '../errors.js';
import { LocalKernel } from '../jupyter/local-kernel.js';
import { DEFAULT_ALPHA } from '../planner/cost-model.js';
import { PLAN_STRATEGIES, type PlanStrategy } from '../planner/replication-planner.js';
import { formatVerifyTable } from '../verify/verify-table.js';
import { toVerifyJson, verifyNotebook } from '../verify/verify.js';

/** Exit code: success (for verify: every variable restored faithfully). */
export const EXIT_OK = 0;
/** Exit code of verify when a variable differs or is missing after the restore. */
export const EXIT_STATE_DIFFERS = 1;
/** Exit code when the command itself failed (bad arguments, a cell raised, a kernel died …). */
export const EXIT_FAILED = 2;
/** 128 + SIGINT, as shells report an interrupted command. */
export const EXIT_INTERRUPTED = 130;

/** Where the CLI writes; tests pass their own. */
export type CliIO = {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
};

const processIO: CliIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Runs the CLI.
 * @param argv the full argv (`process.argv`: node, script, then arguments).
 * @param io output streams.
 * @returns the exit code.
 */
export async function runCli(argv: string[], io: CliIO = processIO): Promise<number> {
  let exitCode = EXIT_OK;
  const program = new Command()
    .name('jupyterhub-resume')
    .description('Checkpoint and restore Jupyter kernel state (JupyterHub service and tools).')
    .version(packageVersion())
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError();

  // `serve` pulls in the whole service (express, pg, …): load it only when it is the command asked
  // for, so `verify` starts fast and does not depend on the service's modules.
  const commandName = argv[2] === 'help' ? argv[3] : argv[2];
  if (commandName === 'serve') {
    const { serveCommand } = await import('./serve-command.js');
    program.addCommand(serveCommand());
  } else {
    program.command('serve').description(
      'Run the JupyterHub service: cull idle servers after checkpointing them, restore on the next start.',
    );
  }

  program
    .command('verify')
    .description(
      'Run a notebook in a fresh kernel, checkpoint it, restore into another fresh kernel and compare every variable.',
    )
    .argument('<notebook>', 'the .ipynb file to verify')
    .option('--json', 'print exactly one JSON object instead of a table')
    .option('--after <file>', 'Python code to run in both kernels before comparing (e.g. g_next = next(gen))')
    .option('--allow-errors', 'keep running the notebook when a cell raises')
    .addOption(
      new Option('--plan <plan>', 'what the checkpoint stores and the restore rebuilds, as the service\'s RESUME_PLAN')
        .choices(PLAN_STRATEGIES)
        .default('optimal'),
    )
    .option('--plan-alpha <weight>', 'weight of checkpoint time against restore time (as RESUME_PLAN_ALPHA)', parseWeight, DEFAULT_ALPHA)
    .option('--no-baselines', 'do not also time the store-all and recompute-all migrations')
    .option('--python <path>', 'Python interpreter with ipykernel (default: the project .venv)')
    .option('--timeout <seconds>', 'deadline for each cell and each agent command', parsePositive, 600)
    .action(async (notebook: string, opts: VerifyFlags) => {
      exitCode = await runVerify(notebook, opts, io);
    });

  try {
    await program.parseAsync(argv);
  } catch (error) {
    // exitOverride turns help, --version and usage errors into exceptions carrying their code.
    if (error instanceof Error && 'exitCode' in error && typeof error.exitCode === 'number') {
      return error.exitCode === 0 ? EXIT_OK : EXIT_FAILED;
    }
    throw error;
  }
  return exitCode;
}

type VerifyFlags = {
  json?: boolean;
  after?: string;
  allowErrors?: boolean;
  plan: PlanStrategy;
  planAlpha: number;
  baselines: boolean;
  python?: string;
  timeout: number;
};

async function runVerify(notebook: string, opts: VerifyFlags, io: CliIO): Promise<number> {
  const controller = new AbortController();
  let signals = 0;
  // First Ctrl-C: stop and clean up (kernels, temp dir). Second: kill the kernels and leave now.
  const onSignal = () => {
    signals += 1;
    if (signals === 1) {
      io.stderr('interrupted: shutting the kernels down (Ctrl-C again to force)\n');
      controller.abort();
    } else {
      LocalKernel.killAllSync();
      process.exit(EXIT_INTERRUPTED);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const showProgress = !opts.json && process.stderr.isTTY;
  try {
    const report = await verifyNotebook({
      notebookPath: notebook,
      ...(opts.after === undefined ? {} : { afterPath: opts.after }),
      allowErrors: opts.allowErrors ?? false,
      plan: opts.plan,
      alpha: opts.planAlpha,
      baselines: opts.baselines,
      ...(opts.python === undefined ? {} : { python: opts.python }),
      timeoutMs: opts.timeout * 1000,
      signal: controller.signal,
      ...(showProgress ? { onProgress: (m: string) => io.stderr(`… ${m}\n`) } : {}),
    });
    if (opts.json) {
      io.stdout(`${JSON.stringify(toVerifyJson(report))}\n`);
      for (const warning of report.warnings) io.stderr(`warning: ${warning}\n`);
    } else {
      io.stdout(formatVerifyTable(report));
    }
    return report.ok ? EXIT_OK : EXIT_STATE_DIFFERS;
  } catch (error) {
    const code = isResumeError(error) ? error.code : 'RESUME_ERR_VERIFY_FAILED';
    const message = error instanceof Error ? error.message : String(error);
    const hint = isResumeError(error) ? error.hint : undefined;
    io.stderr(`error ${code}: ${message}\n${hint ? `hint: ${hint}\n` : ''}`);
    if (!isResumeError(error) && error instanceof Error && error.stack) io.stderr(`${error.stack}\n`);
    if (opts.json) {
      // Still one object on stdout, so scripts can parse the outcome of every run.
      io.stdout(`${JSON.stringify({ notebook, ok: false, error: { code, message, ...(hint ? { hint } : {}) } })}\n`);
    }
    return controller.signal.aborted ? EXIT_INTERRUPTED : EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function parsePositive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

function parseWeight(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of 0 or more (1 migration-centric, 0.05 restore-centric)');
  return n;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
