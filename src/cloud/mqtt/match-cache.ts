import type { Aedes } from 'aedes';

/** Topics a cache remembers before it starts over: one per device topic in use is the steady state. */
const MAX_CACHED_TOPICS = 200_000;

/** The qlobber trie mqemitter matches deliveries against (aedes.mq._matcher). */
interface Matcher {
  match(topic: string, ...rest: unknown[]): unknown;
  add(...args: unknown[]): unknown;
  remove(...args: unknown[]): unknown;
  clear(...args: unknown[]): unknown;
}

/** The part of aedes' persistence that reads and changes persisted subscriptions. */
interface SubscriptionStore {
  subscriptionsByTopic(topic: string, cb?: unknown): unknown;
  addSubscriptions(...args: unknown[]): unknown;
  removeSubscriptions(...args: unknown[]): unknown;
  cleanSubscriptions(...args: unknown[]): unknown;
}

/** Matches by topic, valid until the next subscription change; `generation` tells a lookup started before a change not to store its result. */
class Matches<T> {
  #byTopic = new Map<string, T>();
  generation = 0;

  get(topic: string): T | undefined {
    return this.#byTopic.get(topic);
  }

  set(topic: string, value: T, generation: number): void {
    if (generation !== this.generation) return;
    if (this.#byTopic.size >= MAX_CACHED_TOPICS) this.#byTopic.clear();
    this.#byTopic.set(topic, value);
  }

  invalidate(): void {
    this.generation += 1;
    this.#byTopic.clear();
  }
}

/**
 * Remembers the embedded broker's topic matches between subscription changes.
 * aedes matches every QoS 1 publish twice, against the persisted subscriptions
 * (to queue it for sessions that are offline) and against the emitter's
 * listeners (to deliver it): four qlobber walks per batch at fan-in (the batch,
 * its answer), over tries holding every device's subscription, ~6% of the
 * server's time. Subscriptions change when clients (un)subscribe or go; between
 * changes a topic's matches are the same, so they come from a Map. Every add,
 * remove or clean drops all of them, before and after it (the persistence's
 * change may complete later). The matches are shared: aedes and mqemitter only
 * read them. The persistence must be aedes's own in-memory one without
 * broadcast subscriptions (other brokers' changes would bypass these methods),
 * which is what EmbeddedBroker creates.
 */
export function cacheTopicMatches(aedes: Aedes): void {
  const matcher = (aedes as unknown as { mq: { _matcher: Matcher } }).mq._matcher;
  const delivered = new Matches<unknown>();
  const match = matcher.match.bind(matcher);
  matcher.match = (topic, ...rest) => {
    if (rest.length > 0) return match(topic, ...rest);
    let found = delivered.get(topic);
    if (found === undefined) {
      found = match(topic);
      delivered.set(topic, found, delivered.generation);
    }
    return found;
  };
  for (const name of ['add', 'remove', 'clear'] as const) {
    const change = matcher[name].bind(matcher);
    matcher[name] = (...args) => {
      delivered.invalidate();
      return change(...args);
    };
  }

  const store = (aedes as unknown as { persistence: SubscriptionStore }).persistence;
  const persisted = new Matches<unknown>();
  const byTopic = store.subscriptionsByTopic.bind(store);
  store.subscriptionsByTopic = (topic, cb) => {
    if (cb !== undefined) return byTopic(topic, cb);
    const found = persisted.get(topic);
    if (found !== undefined) return Promise.resolve(found);
    const generation = persisted.generation;
    return (byTopic(topic) as Promise<unknown>).then((subs) => {
      persisted.set(topic, subs, generation);
      return subs;
    });
  };
  for (const name of ['addSubscriptions', 'removeSubscriptions', 'cleanSubscriptions'] as const) {
    const change = store[name].bind(store);
    store[name] = (...args) => {
      persisted.invalidate();
      const result = change(...args);
      if (result instanceof Promise) void result.finally(() => persisted.invalidate()).catch(() => {});
      return result;
    };
  }
}
