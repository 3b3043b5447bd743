import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Heap growth since the last collection that makes a drain's end worth a full collection. */
const COLLECT_ABOVE_BYTES = 8 * 1024 * 1024;

/**
 * An agent is a long-running process on a device with little memory (gateways
 * with 512 MB are common) that allocates in bursts (a drain) and then idles.
 *
 * V8 grows the young generation up to 32 MB during a burst and keeps it
 * resident afterwards; with a growth factor of 1 it stays at its initial 1 MB
 * semi-spaces, which costs a drain more (cheap) scavenges and saves ~30 MB for
 * the rest of the agent's life (bench agent-memory). Set at run time because an
 * agent is started as `node bin/syncline.js agent` as often as through its
 * shebang, and only the agent wants it (the server's throughput wants the large
 * young generation). V8 reads this flag at each resize, so setting it after
 * start takes effect (`--max-semi-space-size` would not: the heap fixes it at setup).
 *
 * Returns what to call when a burst ended: a full collection, when the heap grew
 * by COLLECT_ABOVE_BYTES since the last one. V8 would shrink the old generation
 * by itself only once its memory reducer notices the process idles (10–20 s
 * later, or never while a trickle of rows keeps it allocating); a trickle does
 * not grow the heap by that much, so it never pays for a collection per row.
 */
export function agentHeap(): { burstEnded: () => void } {
  setFlagsFromString('--semi-space-growth-factor=1');
  // gc() is exposed to contexts created after the flag is set; the agent's own context stays as it is.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let settled = getHeapStatistics().total_heap_size;
  return {
    burstEnded() {
      if (getHeapStatistics().total_heap_size < settled + COLLECT_ABOVE_BYTES) return;
      // The second collection frees the pages the first one's sweep emptied (measured: ~20 MB more resident released).
      gc();
      gc();
      settled = getHeapStatistics().total_heap_size;
    },
  };
}
