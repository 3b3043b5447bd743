// Preloaded (NODE_OPTIONS=--import) into the agent of a two-way chaos device whose clock jumps:
// Date.now() runs SYNCLINE_CHAOS_CLOCK_FILE's number of milliseconds off (0 without the file),
// as a wrong or stepped system clock would, re-read every 50 ms. Plain JS: it loads before tsx.
// Timers are left alone (they use the monotonic clock, which a wall-clock step does not move).
import { readFileSync } from 'node:fs';

const file = process.env.SYNCLINE_CHAOS_CLOCK_FILE;
if (file) {
  const realNow = Date.now.bind(Date);
  let offset = 0;
  const read = () => {
    try {
      offset = Number(readFileSync(file, 'utf8')) || 0;
    } catch {
      offset = 0;
    }
  };
  read();
  setInterval(read, 50).unref();
  Date.now = () => realNow() + offset;
}
