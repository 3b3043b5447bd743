/**
 * The demo "app" of `syncline dev`: an ordinary program writing an ordinary SQLite
 * file from its own process. It knows nothing about Syncline, which is the point.
 * Usage: demo-app.ts <db-file> [interval-ms]
 */
import Database from 'better-sqlite3';

const [dbPath, intervalArg] = process.argv.slice(2);
if (!dbPath) {
  process.stderr.write('usage: demo-app.ts <db-file> [interval-ms]\n');
  process.exit(2);
}
const intervalMs = Number(intervalArg ?? 1000);
const db = new Database(dbPath);
db.pragma('journal_mode = WAL');
db.pragma('busy_timeout = 5000');
db.exec(`
  CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS sensor_readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL
  );
`);
const putSetting = db.prepare('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at');
const addReading = db.prepare('INSERT INTO sensor_readings (sensor, ts, value) VALUES (?, ?, ?)');
const pruneReadings = db.prepare('DELETE FROM sensor_readings WHERE id <= (SELECT max(id) FROM sensor_readings) - 500');

putSetting.run('device_name', 'demo-gateway', Date.now());
putSetting.run('sample_rate_hz', '1', Date.now());

let tick = 0;
const timer = setInterval(() => {
  tick += 1;
  const now = Date.now();
  db.transaction(() => {
    for (const sensor of ['temperature', 'humidity', 'pressure']) {
      addReading.run(sensor, now, Math.round((20 + 10 * Math.sin(tick / 10 + sensor.length)) * 100) / 100 + 0.001);
    }
    if (tick % 10 === 0) putSetting.run('last_heartbeat', new Date(now).toISOString(), now);
    if (tick % 60 === 0) pruneReadings.run();
  })();
}, intervalMs);

const stop = () => {
  clearInterval(timer);
  db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Started by `syncline dev` (with an IPC channel), it ends with dev even when dev is killed outright,
// instead of writing on into a file nobody watches.
if (process.send) process.on('disconnect', stop);
