import type Database from 'better-sqlite3';

/**
 * The rows every benchmark writes: a sensor-style table of five columns, about 80
 * bytes of values per row, deterministic so runs compare.
 */
export const READINGS_DDL = 'CREATE TABLE readings (id INTEGER PRIMARY KEY, device TEXT NOT NULL, ts INTEGER NOT NULL, value REAL, note TEXT)';

export interface Reading {
  id: number;
  device: string;
  ts: number;
  value: number;
  note: string;
}

export function reading(i: number): Reading {
  return { id: i, device: `device-${i % 50}`, ts: 1_700_000_000_000 + i * 1000, value: i * 0.5 + 0.25, note: `reading ${i} from the bench workload` };
}

/** Inserts rows [from, to) in transactions of `perTransaction` rows (1 = autocommit). */
export function insertReadings(db: Database.Database, from: number, to: number, perTransaction: number): void {
  const insert = db.prepare('INSERT INTO readings (id, device, ts, value, note) VALUES (?, ?, ?, ?, ?)');
  const write = (i: number) => {
    const r = reading(i);
    insert.run(r.id, r.device, r.ts, r.value, r.note);
  };
  if (perTransaction === 1) {
    for (let i = from; i < to; i++) write(i);
    return;
  }
  const chunk = db.transaction((start: number, end: number) => {
    for (let i = start; i < end; i++) write(i);
  });
  for (let start = from; start < to; start += perTransaction) chunk(start, Math.min(to, start + perTransaction));
}
