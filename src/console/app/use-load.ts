import { useCallback, useEffect, useState } from 'preact/hooks';

/** Loads something when its inputs change; `reload` fetches again. */
export function useLoad<T>(load: () => Promise<T>, inputs: unknown[]): { data: T | undefined; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (value) => live && (setData(value), setError(null)),
      (failure: unknown) => live && setError(failure instanceof Error ? failure.message : String(failure)),
    );
    return () => {
      live = false;
    };
  }, [...inputs, round]);
  const reload = useCallback(() => setRound((n) => n + 1), []);
  return { data, error, reload };
}

export const can = (role: string, need: 'operator' | 'admin'): boolean => (need === 'operator' ? role === 'operator' || role === 'admin' : role === 'admin');
export const when = (iso: string | null): string => (iso ? new Date(iso).toLocaleString() : '—');
export const short = (id: string): string => id.slice(0, 8);
