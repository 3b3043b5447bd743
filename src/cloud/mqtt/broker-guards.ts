import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import type { Queryable } from '../store/store.js';

/**
 * Limits the embedded broker puts on what one client can make it hold: packets over
 * a size are refused as soon as their length is known (aedes itself would buffer a
 * 100 MB publish whole before anyone looks at it), and sessions of revoked devices
 * are closed instead of lingering with their publishes dropped.
 */

/** The part of mqtt-packet's parser (aedes 1.2 `client._parser`) the size guard hooks into. */
interface PacketParser {
  packet: { length: number };
  _parseLength(): boolean;
  _emitError(error: Error): void;
}

/**
 * Refuses any packet whose declared remaining length is over `maxBytes`: the parser
 * stops, aedes reports a client error and closes the socket, before the body is read.
 */
export function limitPacketSize(client: Client, maxBytes: number, onRefused: (declared: number) => void): void {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  // The hook relies on aedes internals (the pinned version); fail loudly rather than run unguarded.
  if (!parser || typeof parser._parseLength !== 'function') throw new Error('aedes client has no packet parser to guard; check the aedes version');
  const parseLength = parser._parseLength.bind(parser);
  parser._parseLength = () => {
    if (!parseLength()) return false;
    if (parser.packet.length <= maxBytes) return true;
    onRefused(parser.packet.length);
    parser._emitError(new Error(`MQTT packet of ${parser.packet.length} bytes is over the ${maxBytes}-byte limit`));
    return false;
  };
}

/** Connected device sessions by device id, so a revocation can find and close them. */
export class DeviceSessions {
  readonly #byDevice = new Map<string, Set<Client>>();

  add(deviceId: string, client: Client): void {
    let clients = this.#byDevice.get(deviceId);
    if (!clients) this.#byDevice.set(deviceId, (clients = new Set()));
    clients.add(client);
  }

  remove(deviceId: string, client: Client): void {
    const clients = this.#byDevice.get(deviceId);
    clients?.delete(client);
    if (clients?.size === 0) this.#byDevice.delete(deviceId);
  }

  get deviceIds(): string[] {
    return [...this.#byDevice.keys()];
  }

  /** How many devices have a session. */
  get size(): number {
    return this.#byDevice.size;
  }

  /** Closes every session of the device; returns how many there were. */
  disconnect(deviceId: string): number {
    const clients = [...(this.#byDevice.get(deviceId) ?? [])];
    for (const client of clients) client.close();
    this.#byDevice.delete(deviceId);
    return clients.length;
  }
}

/**
 * How far before the newest revocation seen each check reads again. revokeDevice
 * stamps revoked_at with now(), the start of its one autocommit statement, and
 * the row shows only at commit; in between its UPDATE may wait for the device
 * row's lock (the activity recorder's last_seen_at UPDATE holds it until it
 * commits), so a revocation can show after one stamped later was read. One
 * whose statement took less than this is still caught. Nothing (no
 * statement_timeout) bounds that wait, so this is a judgement: a minute is far
 * beyond a healthy database's lock waits, and re-reading the last minute's
 * revocations every check is a range read of that many index entries.
 */
export const REVOCATION_OVERLAP_MS = 60_000;

/**
 * Every `intervalMs`, asks the store which devices were revoked recently (by
 * this process or any other on the same database) and closes their sessions
 * here. The cost follows revocations, not connections: a check reads the
 * devices revoked since REVOCATION_OVERLAP_MS before the newest revoked_at it
 * has seen (the database's clock on both sides, so this host's does not
 * matter), through the partial index on revoked_at. Until it has seen one, it
 * reads every revoked device (once per broker start, the index's size), so the
 * first check closes a session of a device revoked at any time. Checks skipped
 * for want of sessions move nothing: the range starts from what was seen.
 *
 * Authentication refuses a revoked device and the session is registered as
 * soon as its read answers, so a device revoked in between has a revocation
 * that committed after that read: stamped at most the overlap before its
 * commit, while every revocation a check has seen by registration time
 * committed, so was stamped, before it. The checks after registration still
 * read it, unless registering the answer took longer than the overlap (less
 * the revoking statement's own wait). Returns a stop function.
 */
export function watchRevocations(options: { db: Queryable; sessions: DeviceSessions; intervalMs: number; logger: Logger; aedes: Aedes; onClosed: (sessions: number) => void }): () => void {
  const { db, sessions, logger } = options;
  let newest: Date | undefined;
  let running = false;
  const timer = setInterval(() => {
    if (running || sessions.size === 0 || options.aedes.closed) return;
    running = true;
    const since = newest ? new Date(newest.getTime() - REVOCATION_OVERLAP_MS).toISOString() : '-infinity';
    db.query<{ id: string; revoked_at: Date }>('SELECT id::text AS id, revoked_at FROM devices WHERE revoked_at >= $1::timestamptz', [since])
      .then(({ rows }) => {
        for (const { id, revoked_at } of rows) {
          if (!newest || revoked_at > newest) newest = revoked_at;
          const closed = sessions.disconnect(id);
          if (closed === 0) continue;
          options.onClosed(closed);
          logger.warn({ device_id: id, sessions: closed }, 'device revoked; its MQTT session is closed');
        }
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'could not check connected MQTT devices for revocations; trying again'))
      .finally(() => {
        running = false;
      });
  }, options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
