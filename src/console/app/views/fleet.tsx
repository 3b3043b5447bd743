import { useState } from 'preact/hooks';
import { deviceListSchema, devicePauseAnswerSchema, deviceSchema, lineageListSchema, type WhoAmIAnswer } from '../../../protocol/admin-answers.js';
import { Routes } from '../../../protocol/constants.js';
import { call, path } from '../api.js';
import { can, short, useLoad, when } from '../use-load.js';

export function Fleet({ me }: { me: WhoAmIAnswer }) {
  const { data, error, reload } = useLoad(async () => ({ devices: (await call(deviceListSchema, Routes.devices)).devices, lineages: (await call(lineageListSchema, Routes.lineages)).lineages }), []);
  const [search, setSearch] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const needle = search.trim().toLowerCase();
  const devices = (data?.devices ?? []).filter((d) => needle === '' || d.name.toLowerCase().includes(needle) || d.device_id.includes(needle));
  const act = async (label: string, run: () => Promise<unknown>) => {
    try {
      await run();
      setMessage(`${label}: done.`);
    } catch (failure) {
      setMessage(`${label}: ${(failure as Error).message}`);
    }
    reload();
  };
  const revoke = (id: string, name: string) => {
    if (!confirm(`Revoke the token of ${name}? The device can no longer send.`)) return;
    void act(`Revoke ${name}`, () => call(deviceSchema, path(Routes.deviceRevoke, { id }), { method: 'POST' }));
  };
  const pause = (id: string, name: string) => act(`Pause ${name}`, () => call(devicePauseAnswerSchema, path(Routes.devicePause, { id }), { method: 'POST', body: { note: 'paused from the console' } }));
  const resume = (id: string, name: string) => act(`Resume ${name}`, () => call(devicePauseAnswerSchema, path(Routes.deviceResume, { id }), { method: 'POST' }));
  const operator = can(me.role, 'operator');
  return (
    <>
      <h1>Fleet</h1>
      <label for="fleet-search">Search devices</label>{' '}
      <input id="fleet-search" type="search" value={search} placeholder="name or id" onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
      {message && <p role="status" class="notice">{message}</p>}
      {error && <p role="alert" class="error">{error}</p>}
      <div class="scroll">
        <table>
          <caption class="sr-only">Devices</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Last seen</th><th scope="col">Transport</th><th scope="col">Lineages</th><th scope="col">Paused</th><th scope="col">State</th>{operator && <th scope="col">Actions</th>}</tr></thead>
          <tbody>
            {devices.map((d) => {
              const lineages = data!.lineages.filter((l) => l.device_id === d.device_id);
              // Paused by governance (rows staged in the cloud) or told to stop sending (rows buffered on the device).
              const staging = lineages.filter((l) => l.status === 'paused').length;
              const stopped = lineages.filter((l) => l.device_state === 'paused').length;
              return (
                <tr data-device={d.device_id}>
                  <td>{d.name}</td>
                  <td><code class="nowrap" title={d.device_id}>{short(d.device_id)}</code></td>
                  <td>{when(d.last_seen_at)}</td>
                  <td>{d.last_transport ? d.last_transport.toUpperCase() : '—'}</td>
                  <td>{lineages.map((l) => <a href={`#/lineages/${l.id}`} class="chip">{l.source_table}</a>)}</td>
                  <td>
                    {staging === 0 && stopped === 0 && 'no'}
                    {staging > 0 && <span class="badge paused">{staging} staging</span>}{' '}
                    {stopped > 0 && <span class="badge paused">{stopped} stopped on device</span>}
                  </td>
                  <td>{d.revoked_at ? `revoked ${when(d.revoked_at)}` : 'active'}</td>
                  {operator && (
                    <td><div class="actions">
                      {!d.revoked_at && lineages.length > 0 && (stopped < lineages.length
                        ? <button type="button" onClick={() => pause(d.device_id, d.name)} aria-label={`Pause ${d.name}`}>Pause</button>
                        : <button type="button" onClick={() => resume(d.device_id, d.name)} aria-label={`Resume ${d.name}`}>Resume</button>)}
                      {can(me.role, 'admin') && !d.revoked_at && <button type="button" class="danger" onClick={() => revoke(d.device_id, d.name)}>Revoke</button>}
                    </div></td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
