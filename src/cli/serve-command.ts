import { Command, Option } from 'commander';
import { startService } from '../app.js';
import { SETTINGS, type SettingName, type SettingSpec } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import { isResumeError } from '../errors.js';

/** How long a stop may take (a checkpoint in flight finishes) before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 30_000;

/**
 * `jupyterhub-resume serve`: runs the hub service. Every setting is a flag and an environment
 * variable (flags win); `--help` lists them with the variable each one mirrors.
 */
export function serveCommand(): Command {
  const command = new Command('serve').description(
    'Run the JupyterHub service: cull idle servers after checkpointing them, restore on the next start.',
  );
  // Commander names an option after its flag (`--cull-timeout` → cullTimeout); keep the mapping
  // to setting names (cullTimeoutS) explicit.
  const attributes = new Map<SettingName, string>();
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const spec: SettingSpec = SETTINGS[name];
    const option = new Option(`${spec.flag} <value>`, `${spec.description} [env ${spec.env}]`);
    attributes.set(name, option.attributeName());
    command.addOption(option);
  }
  command.action(async (opts: Record<string, string | undefined>) => {
    const flags: Partial<Record<SettingName, string>> = {};
    for (const [name, attribute] of attributes) {
      const value = opts[attribute];
      if (value !== undefined) flags[name] = value;
    }
    let service;
    try {
      service = await startService(loadConfig(process.env, flags));
    } catch (e) {
      const text = isResumeError(e) ? `${e.code}: ${e.message}${e.hint === undefined ? '' : `\n${e.hint}`}` : String(e);
      process.stderr.write(`jupyterhub-resume: ${text}\n`);
      process.exit(1);
    }
    const shutdown = (signal: string) => {
      service.logger.info({ signal }, 'stopping');
      setTimeout(() => process.exit(1), SHUTDOWN_DEADLINE_MS).unref();
      void service.stop().then(() => process.exit(0));
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  return command;
}
