// Syncline inside your own Fastify app: your routes, your sign-in, Syncline's sync routes.
// Run: node embedded-server.mjs   (PORT, DATA_DIR and SYNCLINE_ADMIN_TOKEN optional)
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { SynclineError, openStore, parseSharedConfig, synclinePlugin } from 'syncline/server';

const store = await openStore({ dataDir: process.env.DATA_DIR ?? './data' }); // or { databaseUrl: 'postgres://...' }
const app = Fastify();

// Your own sign-in: any scheme works, Syncline only asks "who is this?" below.
const sessions = new Map();
app.post('/login', async (request) => {
  const token = randomBytes(24).toString('base64url');
  sessions.set(token, request.body.user); // check a password here in a real app
  return { token };
});

await app.register(synclinePlugin, {
  store,
  adminToken: process.env.SYNCLINE_ADMIN_TOKEN ?? randomBytes(24).toString('base64url'),
  shared: parseSharedConfig({
    tables: [{ name: 'todos', direction: 'both', key: ['id'], conflict: 'last_writer_wins', columns: [{ name: 'id', type: 'TEXT' }, { name: 'title', type: 'TEXT' }, { name: 'done', type: 'INTEGER' }] }],
  }),
  // Called for every two-way sync request: return the user (the scope of their rows) and the device.
  authenticate: async (request) => {
    const user = sessions.get(request.headers.authorization?.replace(/^Bearer /, ''));
    if (!user) throw new SynclineError('unauthorized', 'sign in first');
    return { user, source: String(request.headers['x-syncline-source']) };
  },
});

const url = await app.listen({ port: Number(process.env.PORT ?? 3000) });
console.log(`listening on ${url}`);
process.once('SIGTERM', async () => {
  await app.close();
  await store.close();
});
