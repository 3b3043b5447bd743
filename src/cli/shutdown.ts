import type { Logger } from 'pino';

/** Resolves with the signal's name on the first SIGINT or SIGTERM, so services can stop cleanly. */
export function untilShutdown(): { signal: AbortSignal; done: Promise<string> } {
  const controller = new AbortController();
  const done = new Promise<string>((resolve) => {
    const onSignal = (name: string) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      controller.abort(new Error(`received ${name}`));
      resolve(name);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return { signal: controller.signal, done };
}

/**
 * Awaits one step of a shutdown; a step still running after `warnAfterMs` is named
 * in a warning, so a stop that hangs says what it waits for instead of going quiet.
 */
export async function shutdownStep<T>(logger: Logger, step: string, work: Promise<T>, warnAfterMs = 5_000): Promise<T> {
  const timer = setTimeout(() => logger.warn({ step }, 'still stopping: waiting for this step'), warnAfterMs);
  try {
    return await work;
  } finally {
    clearTimeout(timer);
  }
}
