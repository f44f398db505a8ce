/**
 * A pass-through stream that counts and hashes the bytes going through it: every object store
 * learns an object's size and sha256 while it writes, never by reading it back.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;
  private digest: string | null = null;

  /** Bytes that went through so far. */
  get bytes(): number {
    return this.count;
  }

  /** The sha256 (hex) of everything that went through; only once the stream has ended. */
  get sha256(): string {
    this.digest ??= this.hash.digest('hex');
    return this.digest;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    const piece = toBytes(chunk);
    if (piece === null) {
      callback(new TypeError('a blob body must be a byte stream'));
      return;
    }
    this.hash.update(piece);
    this.count += piece.length;
    callback(null, piece);
  }
}

/** The bytes of one stream chunk, or null for something that is not bytes. */
export function toBytes(chunk: unknown): Buffer | null {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return null;
}
