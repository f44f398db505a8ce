/**
 * Reads one bytea value as raw bytes through `COPY (SELECT …) TO STDOUT (FORMAT binary)`.
 *
 * Why not a plain SELECT: in text format Postgres sends bytea as hex (twice the bytes on the wire
 * and a hex decode of every chunk), and pg 8's `binary: true` is no way out: it decodes every
 * result field as UTF-8 before the type parser sees it, which corrupts arbitrary bytes (checked
 * with pg 8.23.1: `SELECT $1::bytea` with `binary: true` returns a mangled string). Binary COPY
 * delivers the bytes untouched in CopyData messages, which pg hands to the active query as
 * Buffers.
 *
 * The class is a pg "submittable" (the mechanism pg-cursor and pg-copy-streams use): pg calls
 * `submit()` when the query reaches the front of the client's queue and then routes the backend's
 * messages to the `handle…` methods.
 */
import type pg from 'pg';

/** The 11-byte signature that starts a binary COPY stream. */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** A COPY of at most one row with one bytea column; `result` resolves to its bytes (null: no row). */
export class ByteaCopyQuery implements pg.Submittable {
  /** Settles once the server has finished the statement. */
  readonly result: Promise<Buffer | null>;
  private readonly parts: Buffer[] = [];
  private settled = false;
  private protocolError: Error | undefined;
  private resolve!: (value: Buffer | null) => void;
  private reject!: (reason: unknown) => void;

  /**
   * @param text a complete `COPY (SELECT <one bytea column> …) TO STDOUT (FORMAT binary)` statement.
   *   COPY takes no bind parameters: literals in it must be escaped by the caller.
   */
  constructor(readonly text: string) {
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** Called by pg: sends the statement with the simple query protocol. */
  submit(connection: pg.Connection): void {
    connection.query(this.text);
  }

  /** Called by pg for each CopyData message. */
  handleCopyData(msg: { chunk: Buffer }): void {
    // msg.chunk is a view into pg's receive buffer, which pg may overwrite with the next packet.
    this.parts.push(Buffer.from(msg.chunk));
  }

  /** Called by pg when the statement is done and the connection is ready again. */
  handleReadyForQuery(): void {
    if (this.settled) return;
    if (this.protocolError !== undefined) return this.fail(this.protocolError);
    try {
      this.settle(parseSingleBytea(this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts)));
    } catch (err) {
      this.fail(err);
    }
  }

  /** Called by pg for an error from the server or for a lost connection. */
  handleError(err: unknown): void {
    this.fail(err);
  }

  /** Called by pg when COPY completes; the result is delivered at ReadyForQuery. */
  handleCommandComplete(): void {}

  /** A COPY TO never asks for input; refuse politely if a wrong statement does. */
  handleCopyInResponse(connection: pg.Connection): void {
    this.protocolError = new Error('ByteaCopyQuery: the statement asked for COPY input');
    (connection as unknown as { sendCopyFail(message: string): void }).sendCopyFail('not a COPY TO statement');
  }

  /** Not expected from a COPY statement; recorded and reported at ReadyForQuery. */
  handleRowDescription(): void {
    this.protocolError ??= new Error('ByteaCopyQuery: the statement returned rows instead of COPY data');
  }

  /** See handleRowDescription. */
  handleDataRow(): void {}

  /** See handleRowDescription. */
  handleEmptyQuery(): void {
    this.protocolError ??= new Error('ByteaCopyQuery: empty statement');
  }

  /** See handleRowDescription. */
  handlePortalSuspended(): void {}

  private settle(value: Buffer | null): void {
    this.settled = true;
    this.resolve(value);
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }
}

/**
 * Runs a ByteaCopyQuery on a client.
 * @returns the bytes of the one row, or null when the SELECT found no row.
 */
export async function copyBytea(client: pg.ClientBase, text: string): Promise<Buffer | null> {
  const query = new ByteaCopyQuery(text);
  client.query(query);
  return query.result;
}

/**
 * Parses a binary COPY stream that holds zero or one row of one non-null column.
 * Layout: signature, int32 flags, int32 extension length + extension, then per row an int16 field
 * count and per field an int32 length and the bytes; an int16 -1 ends the stream.
 */
function parseSingleBytea(stream: Buffer): Buffer | null {
  if (stream.length < SIGNATURE.length + 8 || !stream.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    throw new Error('ByteaCopyQuery: not a binary COPY stream');
  }
  let offset = SIGNATURE.length + 4;
  offset += 4 + stream.readInt32BE(offset);
  const fields = stream.readInt16BE(offset);
  offset += 2;
  if (fields === -1) return null;
  if (fields !== 1) throw new Error(`ByteaCopyQuery: expected one column, got ${fields}`);
  const length = stream.readInt32BE(offset);
  offset += 4;
  if (length < 0) throw new Error('ByteaCopyQuery: the value is NULL');
  const value = stream.subarray(offset, offset + length);
  offset += length;
  if (value.length !== length || stream.readInt16BE(offset) !== -1) {
    throw new Error('ByteaCopyQuery: expected exactly one row');
  }
  return value;
}
