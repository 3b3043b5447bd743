import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bearerToken, generateDeviceToken, hashToken, looksLikeDeviceToken, secretsEqual } from '../../src/cloud/auth/tokens.js';

describe('device tokens', () => {
  test('are sld_ plus 32 random bytes in base64url, and differ every time', () => {
    const a = generateDeviceToken();
    const b = generateDeviceToken();
    assert.match(a, /^sld_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a.slice(4), 'base64url').length, 32);
    assert.notEqual(a, b);
    assert.ok(looksLikeDeviceToken(a));
    assert.ok(!looksLikeDeviceToken(`${a}x`));
    assert.ok(!looksLikeDeviceToken('sla_abc'));
  });

  test('are stored as SHA-256 hex only', () => {
    const token = generateDeviceToken();
    assert.match(hashToken(token), /^[0-9a-f]{64}$/);
    assert.ok(!hashToken(token).includes(token.slice(4, 20)));
  });

  test('secrets compare equal only when identical, whatever their lengths', () => {
    assert.ok(secretsEqual('admin-token-123456', 'admin-token-123456'));
    assert.ok(!secretsEqual('admin-token-123457', 'admin-token-123456'));
    assert.ok(!secretsEqual('short', 'admin-token-123456'));
    assert.ok(!secretsEqual('', 'admin-token-123456'));
  });

  test('bearer header parsing', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer  abc '), 'abc');
    assert.equal(bearerToken('Basic abc'), undefined);
    assert.equal(bearerToken('Bearer a b'), undefined);
    assert.equal(bearerToken(undefined), undefined);
    assert.equal(bearerToken(['Bearer a', 'Bearer b']), undefined);
  });
});
