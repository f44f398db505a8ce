/**
 * A kernel's connection file (`kernel-<id>.json`): where its five sockets listen and the key that
 * signs its messages (jupyter_client "Connection files").
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ResumeError } from '../errors.js';
import { describeSchemaIssues } from './kernel-messages.js';

const port = z.number().int().min(0).max(65535);

/** Schema of a connection file; ports are 0 until the kernel has bound them. */
export const connectionInfoSchema = z.looseObject({
  transport: z.enum(['tcp', 'ipc']).default('tcp'),
  ip: z.string().min(1),
  shell_port: port,
  iopub_port: port,
  stdin_port: port,
  control_port: port,
  hb_port: port,
  key: z.string(),
  signature_scheme: z.string().default('hmac-sha256'),
  kernel_name: z.string().optional(),
});

/** A validated connection file. */
export type ConnectionInfo = z.infer<typeof connectionInfoSchema>;

/** The five channels a kernel listens on. */
export type KernelSocketName = 'shell' | 'iopub' | 'stdin' | 'control' | 'hb';

/** True when every port is bound (a kernel rewrites its file after binding ports given as 0). */
export function hasBoundPorts(info: ConnectionInfo): boolean {
  return [info.shell_port, info.iopub_port, info.stdin_port, info.control_port, info.hb_port].every(
    (p) => p > 0,
  );
}

/**
 * The ZeroMQ endpoint of one channel, e.g. `tcp://127.0.0.1:50123`.
 * @param info the connection info.
 * @param channel which socket.
 */
export function endpointOf(info: ConnectionInfo, channel: KernelSocketName): string {
  const p = info[`${channel}_port`];
  // ipc endpoints are "<ip>-<port>" paths (jupyter_client's convention).
  return info.transport === 'ipc' ? `ipc://${info.ip}-${p}` : `tcp://${info.ip}:${p}`;
}

/**
 * Parses connection info from JSON text.
 * @param text the file's content.
 * @param source where it came from, for the error message.
 * @returns the validated info.
 * Throws RESUME_ERR_KERNEL_CONNECTION_FILE_INVALID when it is not a connection file.
 */
export function parseConnectionInfo(text: string, source: string): ConnectionInfo {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw invalid(source, 'it is not JSON', cause);
  }
  const parsed = connectionInfoSchema.safeParse(json);
  if (!parsed.success) throw invalid(source, describeSchemaIssues(parsed.error));
  if (parsed.data.signature_scheme !== 'hmac-sha256') {
    throw invalid(source, `signature scheme ${parsed.data.signature_scheme} is not supported (only hmac-sha256)`);
  }
  return parsed.data;
}

/**
 * Reads and validates a connection file.
 * @param path absolute path of `kernel-<id>.json`.
 */
export async function readConnectionFile(path: string): Promise<ConnectionInfo> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ResumeError('RESUME_ERR_KERNEL_CONNECTION_FILE_INVALID', `Cannot read the kernel connection file ${path}.`, {
      status: 400,
      hint: 'Check the path: Jupyter writes connection files to `jupyter --runtime-dir`.',
      cause,
    });
  }
  return parseConnectionInfo(text, path);
}

function invalid(source: string, why: string, cause?: unknown): ResumeError {
  return new ResumeError(
    'RESUME_ERR_KERNEL_CONNECTION_FILE_INVALID',
    `${source} is not a usable kernel connection file: ${why}.`,
    { status: 400, hint: 'Pass the kernel-<id>.json file the kernel was started with.', cause },
  );
}
