/** Samples of a Prometheus text exposition, keyed `name{label="value",...}` as printed (labels in printed order). */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** The value of one sample (0 when absent, as a counter that never moved is not printed). */
export function sample(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels);
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    const base = brace < 0 ? key : key.slice(0, brace);
    if (base !== name) continue;
    const printed = brace < 0 ? '' : key.slice(brace + 1, -1);
    const have = new Map(printed.split(/,(?=[a-z_]+=")/).filter(Boolean).map((pair) => {
      const eq = pair.indexOf('=');
      return [pair.slice(0, eq), JSON.parse(pair.slice(eq + 1)) as string] as const;
    }));
    if (have.size === wanted.length && wanted.every(([k, v]) => have.get(k) === v)) return value;
  }
  return 0;
}
