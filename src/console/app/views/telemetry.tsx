import { useState } from 'preact/hooks';
import { deviceListSchema, telemetryLatestSchema, telemetrySeriesSchema, type TelemetrySeriesAnswer } from '../../../protocol/admin-answers.js';
import { Routes } from '../../../protocol/constants.js';
import { call } from '../api.js';
import { useLoad, when } from '../use-load.js';

const WIDTH = 600;
const HEIGHT = 120;

/** The last hour of one numeric point, one-minute averages: a dot per minute that has values, joined across empty minutes. */
function Chart({ series }: { series: TelemetrySeriesAnswer }) {
  const values = series.buckets.map((b) => (typeof b.value === 'number' ? b.value : typeof b.value === 'string' && series.kind === 'numeric' ? Number(b.value) : null));
  const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length === 0) return <p>No values in the last hour.</p>;
  const min = Math.min(...known);
  const max = Math.max(...known);
  const x = (i: number) => (i / Math.max(values.length - 1, 1)) * WIDTH;
  const y = (v: number) => HEIGHT - 4 - ((v - min) / (max - min || 1)) * (HEIGHT - 8);
  const dots = values.flatMap((v, i) => (v !== null && Number.isFinite(v) ? [{ cx: x(i), cy: y(v) }] : []));
  const d = dots.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.cx.toFixed(1)},${p.cy.toFixed(1)}`).join(' ');
  return (
    <figure>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} class="chart" role="img" aria-label={`${series.point}: from ${min} to ${max} over the last hour`}>
        <path d={d} fill="none" stroke="#0b57a4" stroke-width="2" />
        {dots.map((p) => <circle cx={p.cx} cy={p.cy} r="3" fill="#0b57a4" />)}
      </svg>
      <figcaption>{series.point}, one-minute averages of the last hour: min {min}, max {max}</figcaption>
    </figure>
  );
}

export function Telemetry() {
  const { data: devices } = useLoad(() => call(deviceListSchema, Routes.devices), []);
  const [device, setDevice] = useState('');
  const [point, setPoint] = useState('');
  const { data: latest, error } = useLoad(async () => (device ? call(telemetryLatestSchema, `${Routes.telemetryLatest}?device=${encodeURIComponent(device)}`) : null), [device]);
  const { data: series } = useLoad(async () => {
    if (!device || !point) return null;
    const to = new Date();
    const from = new Date(to.getTime() - 3600_000);
    const query = new URLSearchParams({ device, point, from: from.toISOString(), to: to.toISOString(), bucket: '1m', agg: 'avg' });
    return call(telemetrySeriesSchema, `${Routes.telemetryQuery}?${query}`);
  }, [device, point]);
  return (
    <>
      <h1>Telemetry</h1>
      <label for="telemetry-device">Device</label>{' '}
      <select id="telemetry-device" value={device} onChange={(e) => (setDevice((e.target as HTMLSelectElement).value), setPoint(''))}>
        <option value="">choose a device</option>
        {devices?.devices.map((d) => <option value={d.device_id}>{d.name}</option>)}
      </select>
      {error && <p role="alert" class="error">{error}</p>}
      {latest && (
        <div class="scroll">
          <table>
            <caption>Points of this device, newest values</caption>
            <thead><tr><th scope="col">Point</th><th scope="col">Kind</th><th scope="col">Newest value</th><th scope="col">At</th><th scope="col">Chart</th></tr></thead>
            <tbody>
              {latest.points.map((p) => (
                <tr>
                  <td>{p.point}</td><td>{p.kind}</td><td>{p.value === null ? <span class="v-null">NULL</span> : String(p.value)}</td><td>{when(p.ts)}</td>
                  <td>{p.kind === 'numeric' && <button type="button" class="secondary" onClick={() => setPoint(p.point)}>Last hour</button>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {latest && latest.points.length === 0 && <p>This device has sent no telemetry.</p>}
      {series && <Chart series={series} />}
    </>
  );
}
