import type { z } from 'zod';
import { errorAnswerSchema } from '../../protocol/admin-answers.js';

/** A refused or failed call, with the server's error code and context. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'syncline-console-token';
// Session storage: the token lives as long as the tab, and is never put in a URL.
export const savedToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const saveToken = (token: string | null): void => (token === null ? sessionStorage.removeItem(TOKEN_KEY) : sessionStorage.setItem(TOKEN_KEY, token));

export const path = (route: string, params: Record<string, string>): string => route.replace(/:(\w+)/g, (_m, name: string) => encodeURIComponent(params[name] ?? ''));

/** Calls the admin API and parses the answer with its schema: what the page shows is what the schema promises. */
export async function call<T>(schema: z.ZodType<T>, url: string, init: { method?: string; body?: unknown; token?: string } = {}): Promise<T> {
  const token = init.token ?? savedToken();
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method: init.method ?? 'GET', headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}) });
  const text = await response.text();
  const json: unknown = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = errorAnswerSchema.safeParse(json);
    if (error.success) throw new ApiError(response.status, error.data.error, error.data.message, error.data.context);
    throw new ApiError(response.status, 'http_error', `HTTP ${response.status}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new ApiError(response.status, 'unexpected_answer', `the server's answer does not match the API document: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

/** Reads a server-sent event stream with the token in a header (EventSource cannot send one). */
export function stream(url: string, onEvent: (event: string, data: string) => void, signal: AbortSignal): void {
  const token = savedToken();
  void (async () => {
    const response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal });
    if (!response.ok || !response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data !== undefined) onEvent(event, data);
      }
    }
  })().catch(() => {});
}
