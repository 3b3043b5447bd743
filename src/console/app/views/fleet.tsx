import { useState } from 'preact/hooks';
import { deviceListSchema, deviceSchema, lineageListSchema, type WhoAmIAnswer } from '../../../protocol/admin-answers.js';
import { Routes } from '../../../protocol/constants.js';
import { call, path } from '../api.js';
import { can, useLoad, when } from '../use-load.js';

export function Fleet({ me }: { me: WhoAmIAnswer }) {
  const { data, error, reload } = useLoad(async () => ({ devices: (await call(deviceListSchema, Routes.devices)).devices, lineages: (await call(lineageListSchema, Routes.lineages)).lineages }), []);
  const [search, setSearch] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const needle = search.trim().toLowerCase();
  const devices = (data?.devices ?? []).filter((d) => needle === '' || d.name.toLowerCase().includes(needle) || d.device_id.includes(needle));
  const revoke = async (id: string, name: string) => {
    if (!confirm(`Revoke the token of ${name}? The device can no longer send.`)) return;
    try {
      await call(deviceSchema, path(Routes.deviceRevoke, { id }), { method: 'POST' });
      setMessage(`${name} revoked.`);
    } catch (failure) {
      setMessage((failure as Error).message);
    }
    reload();
  };
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
          <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Last seen</th><th scope="col">Lineages</th><th scope="col">Paused</th><th scope="col">State</th>{can(me.role, 'admin') && <th scope="col">Actions</th>}</tr></thead>
          <tbody>
            {devices.map((d) => {
              const lineages = data!.lineages.filter((l) => l.device_id === d.device_id);
              const paused = lineages.filter((l) => l.status === 'paused').length;
              // The newest lineage change is the last time the device's data reached the cloud.
              const seen = lineages.reduce<string | null>((latest, l) => (latest === null || l.updated_at > latest ? l.updated_at : latest), null);
              return (
                <tr>
                  <td>{d.name}</td>
                  <td><code>{d.device_id}</code></td>
                  <td>{when(seen)}</td>
                  <td>{lineages.map((l) => <a href={`#/lineages/${l.id}`} class="chip">{l.source_table}</a>)}</td>
                  <td>{paused > 0 ? <span class="badge paused">{paused} paused</span> : 'no'}</td>
                  <td>{d.revoked_at ? `revoked ${when(d.revoked_at)}` : 'active'}</td>
                  {can(me.role, 'admin') && <td>{!d.revoked_at && <button type="button" class="danger" onClick={() => revoke(d.device_id, d.name)}>Revoke</button>}</td>}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
