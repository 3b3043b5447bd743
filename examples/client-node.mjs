// A Node app with its own SQLite file that two-way syncs a `todos` table.
// Run: node client-node.mjs SERVER_URL USER FILE [TITLE]
import { SharedSync } from 'syncline/client';

const [serverUrl, user, path, title] = process.argv.slice(2);
const { token } = await (await fetch(`${serverUrl}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) })).json();

const sync = await SharedSync.open({ path, serverUrl, token });
if (title) sync.db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)').run(crypto.randomUUID(), title);
await sync.sync(); // push local changes, pull everyone else's (sync.start() keeps syncing in the background)
console.log(JSON.stringify(sync.db.prepare('SELECT title FROM todos ORDER BY title').pluck().all()));
await sync.close();
