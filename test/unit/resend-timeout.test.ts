import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResendTimeout } from '../../src/transport/resend-timeout.js';

test('the MQTT resend wait starts at its floor, follows slow answers, doubles after silences and is capped', () => {
  const t = new ResendTimeout(3000, 30_000);
  assert.equal(t.current(), 3000, 'a dead server costs a device at most the floor');
  for (let i = 0; i < 20; i++) t.answered(50);
  assert.equal(t.current(), 3000, 'fast answers keep the floor');
  for (let i = 0; i < 40; i++) t.answered(2500);
  assert.ok(t.current() > 9000 && t.current() <= 10_000, `a slow cloud is waited for (${t.current()} ms), not sent every batch twice`);
  t.timedOut();
  t.timedOut();
  assert.equal(t.current(), 30_000, 'silences double the wait up to the cap');
  t.answered(100);
  assert.ok(t.current() < 10_000, 'an answer ends the doubling');
  assert.equal(new ResendTimeout(3000, 2000).current(), 2000, 'the cap wins over the floor');
});
