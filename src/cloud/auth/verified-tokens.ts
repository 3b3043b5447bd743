import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { DeviceIdentity } from './devices.js';
import { listenForRevocations } from './revocation-notices.js';

/** How long a verified token is trusted without asking the database again: a bound for what no notification reports. */
export const VERIFIED_TOKEN_TTL_MS = 30_000;
const MAX_VERIFIED_TOKENS = 50_000;

/** Every cache of this process, told of a revocation here before revokeDevice returns (the database's NOTIFY arrives a moment later). */
const caches = new Set<VerifiedTokens>();

/** Drops the device's verified tokens in every cache of this process. */
export function forgetRevokedDevice(deviceId: string): void {
  for (const cache of caches) cache.forgetDevice(deviceId);
}

interface Verified {
  identity: DeviceIdentity;
  until: number;
}

/**
 * Device tokens recently found active: a keep-alive device sends a batch every
 * second, and checking its token each time was a SHA-256 and a statement (its
 * parse, plan and answer) per request. Kept by the token itself, which this
 * process holds anyway while it serves the token's requests, so a hit hashes
 * nothing. Revocation still counts at once: revokeDevice drops the device here
 * before it answers, and every process hears the NOTIFY the database sends for
 * any revocation (revokeDevice in any process, or an UPDATE written by hand).
 * Without a LISTEN connection (not yet listening, or lost) nothing is cached,
 * since a revocation could go unheard; and a lookup that began before any
 * revocation heard since is not cached either (its row may predate the
 * revocation).
 */
export class VerifiedTokens {
  readonly #entries = new Map<string, Verified>();
  readonly #ttlMs: number;
  #listening = false;
  /** Bumped by every revocation and listening change; a lookup's answer is cached only if it did not move meanwhile. */
  #generation = 0;
  #unlisten: (() => Promise<void>) | undefined;

  private constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /**
   * A cache that listens for revocations on `store`. While it does not listen
   * (LISTEN failed and the store is trying again, or the connection is lost) it
   * caches nothing: every request asks the database. Each change empties it, so
   * nothing verified before a revocation it could have missed survives.
   */
  static async start(store: Store, logger: Logger, options: { ttlMs?: number } = {}): Promise<VerifiedTokens> {
    const cache = new VerifiedTokens(options.ttlMs ?? VERIFIED_TOKEN_TTL_MS);
    caches.add(cache);
    cache.#unlisten = await listenForRevocations(store, logger, {
      onRevoked: (deviceId) => cache.forgetDevice(deviceId),
      onLost: () => cache.#setListening(false),
      onListening: () => cache.#setListening(true),
    });
    return cache;
  }

  /** The device of an active token, if verified within the TTL. */
  get(token: string): DeviceIdentity | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    if (entry.until > Date.now()) return entry.identity;
    this.#entries.delete(token);
    return undefined;
  }

  /** Taken before a database lookup and handed to remember(). */
  ticket(): number {
    return this.#generation;
  }

  /** Keeps the device of a token that a check begun at `ticket` found active. */
  remember(token: string, identity: DeviceIdentity, ticket: number): void {
    if (!this.#listening || ticket !== this.#generation) return;
    // Oldest first out (Map order is insertion order): a bound on memory, not an LRU.
    if (this.#entries.size >= MAX_VERIFIED_TOKENS) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(token, { identity, until: Date.now() + this.#ttlMs });
  }

  forgetDevice(deviceId: string): void {
    this.#generation += 1;
    // Revocations are rare: a scan beats keeping a second index on every request.
    for (const [token, entry] of this.#entries) if (entry.identity.device_id === deviceId) this.#entries.delete(token);
  }

  #setListening(listening: boolean): void {
    this.#generation += 1;
    this.#listening = listening;
    this.#entries.clear();
  }

  async stop(): Promise<void> {
    caches.delete(this);
    this.#setListening(false);
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }
}
