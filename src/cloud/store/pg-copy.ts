import pg from 'pg';

/** How much of a COPY's data goes into one CopyData message (the server takes any size; this keeps each write small). */
const CHUNK_BYTES = 256 * 1024;

interface CopyConnection {
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/**
 * `COPY ... FROM STDIN` on a node-pg client, with the whole payload at hand. node-pg
 * speaks the COPY sub-protocol but ships no API for it (pg-copy-streams adds a
 * stream one); a Query whose CopyInResponse handler sends the data is all a payload
 * already in memory needs, and the Query keeps node-pg's own handling of the
 * command's completion and errors (a refused row fails the statement as usual).
 */
class CopyInQuery extends pg.Query {
  readonly #data: Buffer;

  constructor(sql: string, data: Buffer, callback: (error: Error | undefined) => void) {
    super(sql, (error) => callback(error ?? undefined));
    this.#data = data;
  }

  handleCopyInResponse(connection: CopyConnection): void {
    for (let at = 0; at < this.#data.length; at += CHUNK_BYTES) connection.sendCopyFromChunk(this.#data.subarray(at, at + CHUNK_BYTES));
    connection.endCopyFrom();
  }
}

/** Runs `COPY target FROM STDIN` (text format) with `data` on a checked-out client. */
export function copyIn(client: pg.ClientBase, target: string, data: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const query = new CopyInQuery(`COPY ${target} FROM STDIN`, Buffer.from(data), (error) => (error ? reject(error) : resolve()));
    void client.query(query);
  });
}
