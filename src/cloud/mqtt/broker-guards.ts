import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import { arrayParam } from '../store/array-param.js';
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

  /** Closes every session of the device; returns how many there were. */
  disconnect(deviceId: string): number {
    const clients = [...(this.#byDevice.get(deviceId) ?? [])];
    for (const client of clients) client.close();
    this.#byDevice.delete(deviceId);
    return clients.length;
  }
}

/**
 * Every `intervalMs`, asks the store which connected devices were revoked (by this
 * process or any other on the same database) and closes their sessions. Returns a stop function.
 */
export function watchRevocations(options: { db: Queryable; sessions: DeviceSessions; intervalMs: number; logger: Logger; aedes: Aedes; onClosed: (sessions: number) => void }): () => void {
  const { db, sessions, logger } = options;
  let running = false;
  const timer = setInterval(() => {
    const ids = sessions.deviceIds;
    if (running || ids.length === 0 || options.aedes.closed) return;
    running = true;
    db.query<{ id: string }>('SELECT id::text AS id FROM devices WHERE id = ANY($1::uuid[]) AND revoked_at IS NOT NULL', [arrayParam(ids)])
      .then(({ rows }) => {
        for (const { id } of rows) {
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
