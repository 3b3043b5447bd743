import fc from 'fast-check';
import type { SqlValue } from '../../src/protocol/values.js';

/** Every SQLite storage class, with the edges that break naive codecs. */
export const sqlValue: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constant(null),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, 0n, 2n ** 53n, -(2n ** 53n) - 1n),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(-0, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, 2, 1e20),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', "it's", 'a,b', '\n', '😀', '{"$int":"1"}', 'NULL', "X'00'"),
  fc.uint8Array({ maxLength: 64 }),
);
