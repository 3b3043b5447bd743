// The dedicated Worker a page's OpfsDriver starts: it holds one SQLite WASM
// database in OPFS (sync access handles exist only in workers) and answers the
// page's requests in arrival order.
import { sqliteWorkerRequestSchema, type SqliteWorkerAnswer } from '../../protocol/sqlite-worker.js';
import { SqliteWasmHost } from './sqlite-wasm-host.js';

/** The worker global this file uses (the project compiles without the DOM library). */
interface WorkerScope {
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  postMessage(message: SqliteWorkerAnswer): void;
  close(): void;
}
declare const self: WorkerScope;

const host = new SqliteWasmHost();
let queue: Promise<void> = Promise.resolve();

self.addEventListener('message', (event) => {
  const parsed = sqliteWorkerRequestSchema.safeParse(event.data);
  const id = typeof (event.data as { id?: unknown } | undefined)?.id === 'number' ? (event.data as { id: number }).id : -1;
  if (!parsed.success) {
    self.postMessage({ id, ok: false, message: `bad request to the SQLite worker: ${parsed.error.message}` });
    return;
  }
  // Requests run one at a time in arrival order (open is async; the rest must not overtake it).
  queue = queue.then(async () => {
    self.postMessage(await host.answer(id, parsed.data));
    if (parsed.data.kind === 'close') self.close();
  });
});
