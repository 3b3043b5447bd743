import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { Logger } from 'pino';
import { DefaultPorts } from '../../protocol/constants.js';
import { SHARED_WAKE_USERNAME, type TopicChannel } from '../../protocol/topics.js';
import { SynclineError, isSynclineError } from '../../protocol/errors.js';
import type { DeviceIdentity } from '../auth/devices.js';
import type { Store } from '../store/store.js';
import { authorizeDevicePublish, authorizeDeviceSubscribe, authorizeWakeSubscribe, deviceUplinks } from './acl.js';
import { DeviceSessions, limitPacketSize, watchRevocations } from './broker-guards.js';
import { authenticateBrokerClient } from './device-directory.js';
import { cacheTopicMatches } from './match-cache.js';
import type { MqttStats } from './mqtt-stats.js';
import { PubackHold } from './puback-hold.js';

export interface BrokerTlsOptions {
  port: number;
  /** PEM certificate and key of the broker. */
  cert: string;
  key: string;
  /** PEM CA that signs device certificates; when set, clients are asked for one and a verified certificate's CN is the device id. */
  ca?: string;
  /** Refuse TLS clients without a verified certificate (otherwise they may still log in with their token). */
  requireClientCert?: boolean;
}

export interface EmbeddedBrokerOptions {
  /** Signs devices in, and tells of their revocations (its LISTEN). */
  db: Store;
  logger: Logger;
  stats: MqttStats;
  /** A device signed in (with its token or client certificate). */
  onDeviceConnected?: (deviceId: string) => void;
  host: string;
  /** A port (0: any free one), or 'default': 1883, falling back to 18830 when 1883 is taken. */
  port: number | 'default';
  tls?: BrokerTlsOptions;
  /** Two-way sync's wake-ups: devices may sign in with their sync JWT to follow their scope's topic. */
  sharedWake?: SharedWakeAuth;
  /** Largest MQTT packet a client may send (the server's body limit by default); a larger one disconnects it. */
  maxPacketBytes: number;
  /** How often connected devices are checked for revocation (default 1 s). */
  revocationCheckMs?: number;
}

/** Verifies a sync JWT and names the scope it may follow. */
export type SharedWakeAuth = (jwt: string, source: string) => Promise<string>;

/** A connection signed in with a sync JWT: it may only follow its scope's wake-up topic. */
interface WakeSession {
  scope: string;
  source: string;
}

/** A connection signed in as a device, with the exact topics it may publish on (the ACL's answer, computed once per connection). */
interface DeviceSession {
  identity: DeviceIdentity;
  uplink: Map<string, TopicChannel>;
}

/** A held PUBACK is released after this at the latest, answered or not. */
const MAX_PUBACK_HOLD_MS = 2_000;

/** CONNACK return codes of MQTT 3.1.1. */
const IDENTIFIER_REJECTED = 2;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

/**
 * The broker `syncline server` embeds (aedes): authenticates every connection
 * as a device, applies the device topic ACL to every publish and subscription
 * (a denied publish is logged with the device id, counted, and disconnects the
 * client, as MQTT 3.1.1 has no way to refuse a single publish), and listens on
 * TCP and optionally TLS.
 */
export class EmbeddedBroker {
  readonly aedes: Aedes;
  readonly url: string;
  readonly tlsUrl: string | undefined;
  readonly #servers: Server[];
  /** PUBACKs of batches held until their answer (the link releases them). */
  readonly pubacks: PubackHold;
  readonly #sockets: Set<Socket>;
  readonly #stopWatch: () => Promise<void>;
  readonly #devices: DeviceSessions;

  private constructor(aedes: Aedes, pubacks: PubackHold, devices: DeviceSessions, servers: Server[], sockets: Set<Socket>, url: string, tlsUrl: string | undefined, stopWatch: () => Promise<void>) {
    this.aedes = aedes;
    this.pubacks = pubacks;
    this.#devices = devices;
    this.#servers = servers;
    this.#sockets = sockets;
    this.#stopWatch = stopWatch;
    this.url = url;
    this.tlsUrl = tlsUrl;
  }

  static async start(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    const aedes = await Aedes.createBroker({ concurrency: 1000 });
    cacheTopicMatches(aedes);
    const devices = new DeviceSessions();
    const pubacks = new PubackHold(MAX_PUBACK_HOLD_MS);
    installSecurity(aedes, options, devices, pubacks);
    const servers: Server[] = [];
    const sockets = new Set<Socket>();
    const { logger, stats, maxPacketBytes } = options;
    // Half-open or handshaking sockets aedes does not know yet would keep close() waiting.
    const handle = (socket: Socket): void => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      limitPacketSize(aedes.handle(socket), maxPacketBytes, (declared) => {
        stats.oversizedPackets += 1;
        logger.warn({ remote: socket.remoteAddress, declared_bytes: declared, max_packet_bytes: maxPacketBytes }, 'MQTT packet over the size limit; disconnecting the client');
      });
    };
    try {
      // No Nagle: answers are small packets, and waiting to coalesce them costs every device ~40 ms.
      const plain = createServer({ noDelay: true }, handle);
      servers.push(plain);
      const port = await listenWithFallback(plain, options);
      let tlsUrl: string | undefined;
      if (options.tls) {
        const { cert, key, ca, requireClientCert } = options.tls;
        const secure = createTlsServer({ cert, key, noDelay: true, ...(ca ? { ca, requestCert: true, rejectUnauthorized: requireClientCert === true } : {}) }, handle);
        servers.push(secure);
        tlsUrl = `mqtts://${shownHost(options.host)}:${await listen(secure, options.tls.port, options.host)}`;
      }
      const stopRevocations = await watchRevocations({ store: options.db, sessions: devices, intervalMs: options.revocationCheckMs ?? 1_000, logger, aedes, onClosed: (n) => (stats.revokedDisconnects += n) });
      const sweep = setInterval(() => pubacks.sweep(), MAX_PUBACK_HOLD_MS / 2);
      sweep.unref();
      const stopWatch = async () => {
        clearInterval(sweep);
        await stopRevocations();
      };
      return new EmbeddedBroker(aedes, pubacks, devices, servers, sockets, `mqtt://${shownHost(options.host)}:${port}`, tlsUrl, stopWatch);
    } catch (error) {
      await closeAll(aedes, servers, sockets);
      throw error;
    }
  }

  /** Whether the device is signed in to this broker now. */
  holds(deviceId: string): boolean {
    return this.#devices.has(deviceId);
  }

  /** Closes the device's sessions in this broker (it signed in elsewhere); returns how many there were. */
  closeSessionsOf(deviceId: string): number {
    return this.#devices.disconnect(deviceId);
  }

  async close(): Promise<void> {
    await this.#stopWatch();
    await closeAll(this.aedes, this.#servers, this.#sockets);
  }
}

function installSecurity(aedes: Aedes, options: EmbeddedBrokerOptions, devices: DeviceSessions, pubacks: PubackHold): void {
  const { db, logger: log, stats } = options;
  const sessions = new WeakMap<Client, DeviceSession>();
  const wakeSessions = new WeakMap<Client, WakeSession>();
  aedes.authenticate = (client, username, password, done) => {
    const conn = client.conn;
    const certificateDeviceId = conn instanceof TLSSocket && conn.authorized ? subjectCommonName(conn) : undefined;
    const signIn: Promise<void> =
      username === SHARED_WAKE_USERNAME && options.sharedWake
        ? options.sharedWake(password?.toString('utf8') ?? '', client.id).then((scope) => void wakeSessions.set(client, { scope, source: client.id }))
        : authenticateBrokerClient(db, { clientId: client.id, username, password: password?.toString('utf8'), certificateDeviceId }).then((identity) => {
            sessions.set(client, { identity, uplink: uplinkTopics(identity) });
            devices.add(identity.device_id, client);
            options.onDeviceConnected?.(identity.device_id);
          });
    signIn.then(
      () => done(null, true),
      (error: unknown) => {
        stats.authFailures += 1;
        const code = isSynclineError(error) && error.code === 'forbidden' ? IDENTIFIER_REJECTED : isSynclineError(error) && error.code === 'unauthorized' ? BAD_USERNAME_OR_PASSWORD : NOT_AUTHORIZED;
        log.warn({ client_id: client.id.slice(0, 64), username: username?.slice(0, 64), reason: error instanceof Error ? error.message : String(error) }, 'MQTT connection refused');
        done(Object.assign(new Error('connection refused'), { returnCode: code }) as AuthenticateError, false);
      },
    );
  };
  aedes.authorizePublish = (client, packet, done) => {
    const session = client ? sessions.get(client) : undefined;
    // Fast path, same rules: one of the device's own uplink topics, not retained.
    const channel = session && !packet.retain ? session.uplink.get(packet.topic) : undefined;
    if (channel) {
      if (channel === 'rowBatch' && packet.qos === 1 && Buffer.isBuffer(packet.payload)) pubacks.hold(client!, packet.payload);
      return done(null);
    }
    const identity = session?.identity;
    const verdict = identity
      ? authorizeDevicePublish(identity, packet.topic, { retain: packet.retain })
      : { allowed: false as const, reason: client && wakeSessions.has(client) ? 'a wake-up session only listens' : 'no authenticated device' };
    if (verdict.allowed) return done(null);
    stats.deniedPublishes += 1;
    log.warn({ device_id: identity?.device_id, topic: packet.topic.slice(0, 200), reason: verdict.reason }, 'MQTT publish denied; disconnecting the client');
    done(new SynclineError('topic_denied', verdict.reason, identity ? { device_id: identity.device_id } : {}));
  };
  aedes.authorizeSubscribe = (client, subscription, done) => {
    const identity = sessions.get(client)?.identity;
    const wake = wakeSessions.get(client);
    const verdict = identity
      ? authorizeDeviceSubscribe(identity, subscription.topic)
      : wake
        ? authorizeWakeSubscribe(wake.scope, subscription.topic)
        : { allowed: false as const, reason: 'no authenticated device' };
    if (verdict.allowed) return done(null, subscription);
    stats.deniedSubscribes += 1;
    log.warn({ device_id: identity?.device_id, topic: subscription.topic.slice(0, 200), reason: verdict.reason }, 'MQTT subscription denied');
    done(null, null);
  };
  aedes.on('clientDisconnect', (client) => {
    pubacks.forget(client);
    const session = sessions.get(client);
    if (session) devices.remove(session.identity.device_id, client);
  });
  aedes.on('clientError', (client, error) => {
    if (!isSynclineError(error)) log.debug({ client_id: client.id, err: error }, 'MQTT client error');
  });
}

/** The topics the device may publish on, by channel; none when its ids cannot form a topic (the ACL then refuses everything). */
function uplinkTopics(identity: DeviceIdentity): Map<string, TopicChannel> {
  try {
    return deviceUplinks(identity);
  } catch {
    return new Map();
  }
}

function subjectCommonName(socket: TLSSocket): string | undefined {
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' && cn.length > 0 ? cn : undefined;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function listenWithFallback(server: Server, options: EmbeddedBrokerOptions): Promise<number> {
  const port = options.port === 'default' ? DefaultPorts.mqtt : options.port;
  try {
    return await listen(server, port, options.host);
  } catch (error) {
    const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
    if (!(inUse && options.port === 'default')) {
      throw new SynclineError('broker_unavailable', `the MQTT broker cannot listen on ${options.host}:${port}: ${(error as Error).message}`, { port }, { cause: error });
    }
    options.logger.warn({ port: DefaultPorts.mqtt, fallback: DefaultPorts.mqttFallback }, `MQTT port ${DefaultPorts.mqtt} is taken (another broker on this host?); the embedded broker uses ${DefaultPorts.mqttFallback} instead`);
    return listenWithFallback(server, { ...options, port: DefaultPorts.mqttFallback });
  }
}

function shownHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

async function closeAll(aedes: Aedes, servers: Server[], sockets: Set<Socket>): Promise<void> {
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  for (const socket of sockets) socket.destroy();
  await Promise.all(
    servers.filter((s) => s.listening).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
}
