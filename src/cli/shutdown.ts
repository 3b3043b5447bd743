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
