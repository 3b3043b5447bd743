import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import { listenForRevocations } from '../auth/revocation-notices.js';
import type { Store } from '../store/store.js';

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

  /** Whether the device has a session here. */
  has(deviceId: string): boolean {
    return this.#byDevice.has(deviceId);
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
 * How far before the previous check each check reads again. A revocation is
 * stamped with now(), the start of its statement, and shows only at commit; in
 * between its UPDATE may wait for the device row's lock (the activity
 * recorder's last_seen_at UPDATE holds it until it commits), so a revocation a
 * check did not see can carry a stamp from before that check. One whose
 * statement took less than this is still caught. Nothing (no
 * statement_timeout) bounds that wait, so this is a judgement: a minute is far
 * beyond a healthy database's lock waits, and re-reading the last minute's
 * revocations every check is a range read of that many index entries.
 */
export const REVOCATION_OVERLAP_MS = 60_000;

/**
 * Closes the sessions here of devices revoked by this process or any other on
 * the same database, or by hand in SQL. The database announces each revocation
 * and each deleted device at its commit (migrations 0020, 0021) and the named
 * device's sessions close at once.
 * A notification is a hint (none arrives while the LISTEN connection is down,
 * nor for a revocation committed between a device's sign-in read and its
 * session's registration), so every `intervalMs` a check asks which devices
 * were revoked recently and closes theirs too.
 *
 * The check's cost follows revocations, not connections: it reads, through the
 * partial index on revoked_at, the devices revoked since REVOCATION_OVERLAP_MS
 * before the previous check's now() (the database's clock on both sides, so
 * this host's does not matter, and the range moves on with time, not only with
 * newer revocations). A revocation the previous check did not see committed
 * after that check's snapshot, which follows its now(): stamped at most its
 * statement's wait before that, so within the range. The first check after a
 * start reads every revoked device (once per broker start, the index's size),
 * so a stamp from any time that showed before it is caught too. Checks skipped
 * for want of sessions move nothing: the range starts from the last check made.
 *
 * A session is registered as soon as its sign-in read answers, which found the
 * device active, so its revocation committed after that read: a check begun
 * after the registration reads it, unless registering the answer took longer
 * than the overlap (less the revoking statement's own wait). A device deleted
 * while the LISTEN connection is down has no row for the check to read: its
 * session stays until it ends. Resolves once listening (or, when LISTEN fails,
 * polling alone while the store tries again); returns a stop function.
 */
export async function watchRevocations(options: { store: Store; sessions: DeviceSessions; intervalMs: number; logger: Logger; aedes: Aedes; onClosed: (sessions: number) => void }): Promise<() => Promise<void>> {
  const { store, sessions, logger } = options;
  const close = (deviceId: string): void => {
    const closed = sessions.disconnect(deviceId);
    if (closed === 0) return;
    options.onClosed(closed);
    logger.warn({ device_id: deviceId, sessions: closed }, 'device revoked; its MQTT session is closed');
  };
  let checkedAt: Date | undefined;
  let running = false;
  const timer = setInterval(() => {
    if (running || sessions.size === 0 || options.aedes.closed) return;
    running = true;
    const since = checkedAt ? new Date(checkedAt.getTime() - REVOCATION_OVERLAP_MS).toISOString() : '-infinity';
    store
      .query<{ checked_at: Date; revoked: string[] }>('SELECT now() AS checked_at, ARRAY(SELECT id::text FROM devices WHERE revoked_at >= $1::timestamptz) AS revoked', [since])
      .then(({ rows: [check] }) => {
        for (const id of check!.revoked) close(id);
        checkedAt = check!.checked_at;
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'could not check connected MQTT devices for revocations; trying again'))
      .finally(() => {
        running = false;
      });
  }, options.intervalMs);
  timer.unref();
  // While LISTEN is down (the store tries again), the check closes what no notification told.
  const unlisten = await listenForRevocations(store, logger, { onRevoked: close });
  return async () => {
    clearInterval(timer);
    await unlisten();
  };
}
