/** What the chaos apps process (writer.ts) is asked to do, and what it reports. */

export interface WriterPlan {
  stopFile: string;
  pauseMs: number;
  apps: { kind: 'edge' | 'shared'; db: string; seed: number; name: string }[];
}

export interface EdgeAppResult {
  kind: 'edge';
  commits: number;
  changes: Record<string, number>;
  full_refusals: number;
}

export interface SharedAppResult {
  kind: 'shared';
  commits: number;
  writes: number;
  /** The app's last value of each key only it writes; null when its last change deleted it. */
  owned: Record<string, string | null>;
  /** Every value the app wrote to each contested key. */
  contested: Record<string, string[]>;
}

export type AppResult = EdgeAppResult | SharedAppResult;

/** Keys each shared app owns, and keys all of them contend for. */
export const OWNED_KEYS = 60;
export const CONTESTED_KEYS = 8;
export const SHARED_TABLE_SQL = 'CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT, n INTEGER)';
