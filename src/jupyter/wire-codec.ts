/**
 * The Jupyter wire format over ZeroMQ: `[routing ids…, "<IDS|MSG>", hmac, header, parent_header,
 * metadata, content, buffers…]`, signed with HMAC-SHA256 over the four JSON frames
 * (messaging spec, "The Wire Protocol").
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

const DELIMITER = '<IDS|MSG>';
/** The messaging protocol version we speak. */
export const PROTOCOL_VERSION = '5.3';

/** A decoded message; JSON parts are parsed but not validated (callers validate with zod). */
export type WireMessage = {
  header: Record<string, unknown>;
  parentHeader: Record<string, unknown>;
  metadata: Record<string, unknown>;
  content: unknown;
  buffers: Buffer[];
};

/** Signs, encodes and decodes messages of one client session. */
export class WireCodec {
  /** The session id put into every header we send (one per channel). */
  readonly session: string = randomUUID();

  /**
   * @param key the connection file's `key`; `''` means unsigned messages (spec allows it).
   * @param username put into headers; shows in the kernel's logs.
   */
  constructor(
    private readonly key: string,
    private readonly username = 'jupyterhub-resume',
  ) {}

  /**
   * Builds and signs a request.
   * @param msgType e.g. `execute_request`.
   * @param content the message content.
   * @param metadata the message metadata (e.g. an execute request's `cellId`).
   * @returns the message id and the frames to send.
   */
  encode(msgType: string, content: unknown, metadata: Record<string, unknown> = {}): { msgId: string; frames: Buffer[] } {
    const msgId = randomUUID();
    const header = {
      msg_id: msgId,
      msg_type: msgType,
      session: this.session,
      username: this.username,
      date: new Date().toISOString(),
      version: PROTOCOL_VERSION,
    };
    const parts = [header, {}, metadata, content].map((p) => Buffer.from(JSON.stringify(p), 'utf8'));
    return { msgId, frames: [Buffer.from(DELIMITER), Buffer.from(this.sign(parts)), ...parts] };
  }

  /**
   * Decodes a received multipart message.
   * @returns the message, or null when it is malformed or its signature does not match our key
   * (such messages are dropped, as the kernel drops ours).
   */
  decode(frames: Buffer[]): WireMessage | null {
    const at = frames.findIndex((f) => f.length === DELIMITER.length && f.toString('latin1') === DELIMITER);
    if (at < 0 || frames.length < at + 6) return null;
    const signature = frames[at + 1]!;
    const parts = frames.slice(at + 2, at + 6);
    if (this.key !== '') {
      const expected = Buffer.from(this.sign(parts));
      if (expected.length !== signature.length || !timingSafeEqual(expected, signature)) return null;
    }
    try {
      const [header, parentHeader, metadata, content] = parts.map((p) => JSON.parse(p.toString('utf8')));
      if (!isObject(header) || !isObject(parentHeader) || !isObject(metadata)) return null;
      return { header, parentHeader, metadata, content, buffers: frames.slice(at + 6) };
    } catch {
      return null;
    }
  }

  private sign(parts: Buffer[]): string {
    if (this.key === '') return '';
    const hmac = createHmac('sha256', this.key);
    for (const part of parts) hmac.update(part);
    return hmac.digest('hex');
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
