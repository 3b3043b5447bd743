import pg from 'pg';
import type { CopyData } from './store.js';

/** How much of a COPY's data goes into one CopyData message (the server takes any size; this keeps each write small). */
const CHUNK_BYTES = 256 * 1024;

interface CopyConnection {
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
}

/**
 * `COPY ... FROM STDIN` on a node-pg client, with the whole payload at hand. node-pg
 * speaks the COPY sub-protocol but ships no API for it (pg-copy-streams adds a
 * stream one); a Query whose CopyInResponse handler sends the data is all a payload
 * already in memory needs, and the Query keeps node-pg's own handling of the
 * command's completion and errors (a refused row fails the statement as usual).
 */
class CopyInQuery extends pg.Query {
  readonly #data: CopyData;
  /** Why rendering the payload failed; the COPY is aborted and this is what the caller gets. */
  #failure: unknown;

  constructor(sql: string, data: CopyData, callback: (error: Error | undefined) => void) {
    super(sql, (error) => callback(this.#failure === undefined ? (error ?? undefined) : (this.#failure as Error)));
    this.#data = data;
  }

  handleCopyInResponse(connection: CopyConnection): void {
    try {
      // Each part goes to the socket as soon as it is rendered, so PostgreSQL parses it while the next one is.
      for (const part of typeof this.#data === 'string' ? [this.#data] : this.#data()) {
        const bytes = Buffer.from(part);
        for (let at = 0; at < bytes.length; at += CHUNK_BYTES) connection.sendCopyFromChunk(bytes.subarray(at, at + CHUNK_BYTES));
      }
      connection.endCopyFrom();
    } catch (error) {
      this.#failure = error;
      connection.sendCopyFail(error instanceof Error ? error.message : String(error));
    }
  }
}

/** Runs `COPY target FROM STDIN` (text format) with `data` on a checked-out client. */
export function copyIn(client: pg.ClientBase, target: string, data: CopyData): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const query = new CopyInQuery(`COPY ${target} FROM STDIN`, data, (error) => (error ? reject(error) : resolve()));
    void client.query(query);
  });
}
