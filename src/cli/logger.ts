import pino, { type Logger } from 'pino';

/**
 * The root logger of a CLI process: JSON lines on stderr, so stdout stays free for
 * the command's own output (tables, JSON for scripts). Secrets are redacted by path.
 */
export function createLogger(level = process.env.SYNCLINE_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['token', 'adminToken', '*.token', '*.adminToken', 'req.headers.authorization'], censor: '[secret]' },
    },
    pino.destination(2),
  );
}
