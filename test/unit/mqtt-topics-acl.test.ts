import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { authorizeDevicePublish, authorizeDeviceSubscribe, deviceTopics, deviceUplinks } from '../../src/cloud/mqtt/acl.js';
import { renderAclFile } from '../../src/cloud/mqtt/mosquitto-files.js';
import { channelFilter, deviceRoot, deviceTopic, parseDeviceTopic, sharedFilter, TopicChannels, UPLINK_CHANNELS, type TopicChannel } from '../../src/protocol/topics.js';

const CHANNELS = Object.keys(TopicChannels) as TopicChannel[];
const id = fc.uuid();
const project = fc.constantFrom('default', 'acme', 'p-2');
const session = fc.record({ device_id: id, project_id: project, org_id: fc.constant('default') });

describe('MQTT topics', () => {
  test('a device topic parses back into its project, device and channel', () => {
    fc.assert(
      fc.property(project, id, fc.constantFrom(...CHANNELS), (p, d, channel) => {
        assert.deepEqual(parseDeviceTopic(deviceTopic(deviceRoot(p, d), channel)), { projectId: p, deviceId: d, channel });
      }),
    );
  });

  test('anything else is not a device topic', () => {
    for (const topic of ['syncline/p/d', 'syncline/p/d/sync/rows', 'other/p/d/sync/rows/batch', 'syncline/+/d/sync/rows/batch', 'syncline/p/#', 'syncline/p/d/sync/rows/batch/x', 'syncline//d/sync/control', '$SYS/x']) {
      assert.equal(parseDeviceTopic(topic), undefined, topic);
    }
  });

  test('ids that would change the topic shape are refused', () => {
    for (const bad of ['a/b', '+', '#', '', '$share', 'x\u0000']) assert.throws(() => deviceRoot('default', bad), /topic level/);
    assert.throws(() => sharedFilter('a/b', channelFilter('rowBatch')), /topic level/);
    assert.equal(sharedFilter('syncline', channelFilter('rowBatch')), '$share/syncline/syncline/+/+/sync/rows/batch');
  });
});

describe('device topic ACL', () => {
  test('a device publishes exactly on its own uplink channels', () => {
    fc.assert(
      fc.property(session, session, fc.constantFrom(...CHANNELS), (me, owner, channel) => {
        const topic = deviceTopic(deviceRoot(owner.project_id, owner.device_id), channel);
        const own = me.device_id === owner.device_id && me.project_id === owner.project_id;
        assert.equal(authorizeDevicePublish(me, topic).allowed, own && UPLINK_CHANNELS.includes(channel));
      }),
    );
  });

  test('own root, same device id, other project: denied', () => {
    const me = { device_id: '11111111-1111-4111-8111-111111111111', project_id: 'a', org_id: 'default' };
    assert.equal(authorizeDevicePublish(me, deviceTopic(deviceRoot('b', me.device_id), 'rowBatch')).allowed, false);
  });

  test('a device subscribes only to its own control topic, never with wildcards', () => {
    fc.assert(
      fc.property(session, session, fc.constantFrom(...CHANNELS), (me, owner, channel) => {
        const filter = deviceTopic(deviceRoot(owner.project_id, owner.device_id), channel);
        assert.equal(authorizeDeviceSubscribe(me, filter).allowed, me.device_id === owner.device_id && me.project_id === owner.project_id && channel === 'control');
      }),
    );
    const me = { device_id: '11111111-1111-4111-8111-111111111111', project_id: 'default', org_id: 'default' };
    const root = deviceRoot(me.project_id, me.device_id);
    for (const filter of [`${root}/#`, `${root}/sync/+`, 'syncline/#', '#', `$share/g/${root}/sync/control`]) assert.equal(authorizeDeviceSubscribe(me, filter).allowed, false, filter);
  });

  test('the Mosquitto ACL file grants each device the same topics the embedded broker allows, and anonymous clients nothing', () => {
    const devices = [
      { device_id: '11111111-1111-4111-8111-111111111111', project_id: 'default', password_hash: '$7$x' },
      { device_id: '22222222-2222-4222-8222-222222222222', project_id: 'acme', password_hash: '$7$y' },
    ];
    const text = renderAclFile({ username: 'syncline-server', password_hash: '$7$z' }, devices, 'now');
    const sections = text.split(/\n(?=user )/).slice(1);
    assert.equal(sections.length, 3);
    assert.doesNotMatch(text.split('\nuser ')[0]!, /^topic/m, 'no topic line before the first user');
    for (const device of devices) {
      const section = sections.find((s) => s.startsWith(`user ${device.device_id}`))!;
      const { write, read } = deviceTopics(device);
      assert.deepEqual(section.split('\n').filter((l) => l.startsWith('topic write ')).map((l) => l.slice(12)), write);
      assert.deepEqual(section.split('\n').filter((l) => l.startsWith('topic read ')).map((l) => l.slice(11)), read);
      for (const topic of write) assert.ok(authorizeDevicePublish({ ...device, org_id: 'default' }, topic).allowed);
      // The embedded broker's per-connection lookup: the same topics, each with the channel it parses to.
      for (const [topic, channel] of deviceUplinks(device)) assert.equal(parseDeviceTopic(topic)?.channel, channel);
      for (const topic of read) assert.ok(authorizeDeviceSubscribe({ ...device, org_id: 'default' }, topic).allowed);
    }
    const server = sections.find((s) => s.startsWith('user syncline-server'))!;
    assert.match(server, /^topic write syncline\/\+\/\+\/sync\/control$/m);
    assert.doesNotMatch(server, /topic (read|write) syncline\/#/);
  });
});
