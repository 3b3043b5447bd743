import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copyText } from '../../src/cloud/store/copy-text.js';

test('copyText writes tab-separated lines, \\N for NULL, and escapes the four characters COPY reads specially', () => {
  assert.equal(copyText([['1', '2'], ['a', null]], 2), '1\ta\n2\t\\N\n');
  assert.equal(copyText([['back\\slash\ttab\nnl\rcr', '\\N']], 2), 'back\\\\slash\\ttab\\nnl\\rcr\n\\\\N\n');
  assert.equal(copyText([[]], 0), '');
});
