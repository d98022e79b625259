import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJson } from '../../../src/oci/index.js';

describe('parseJson', () => {
  it('parses bytes from a subarray without reading outside it', () => {
    const buf = Buffer.from('xx{"a":[1,true,null,"\\u00e9"]}yy');
    assert.deepEqual(parseJson(buf.subarray(2, buf.length - 2), 'doc'), { a: [1, true, null, 'é'] });
  });

  it('locates syntax errors by line and column and never echoes the document', () => {
    const cases: [string, RegExp][] = [
      ['{"a":}', /expected a JSON value, found "}" at line 1 column 6 \(position 5\)/],
      ['[1,]', /found "]" at line 1 column 4/],
      ["{'a':1}", /expected a property name in double quotes, found "'"/],
      ['{"a" 1}', /expected ":", found "1"/],
      ['"tab\there"', /expected a closing quote, found "\\t"/],
      ['"\\q"', /expected an escape sequence/],
      ['01', /expected end of input, found "1"/],
      ['{"secret":"hunter2",}', /at line 1 column 21/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseJson(text, 'doc'),
        (e: Error) =>
          message.test(e.message) &&
          /^invalid doc: is not valid JSON: /.test(e.message) &&
          !e.message.includes('hunter2'),
        text,
      );
    }
  });

  it('still reports very deep garbage, without overflowing the stack', () => {
    assert.throws(() => parseJson('['.repeat(200_000), 'doc'), /not valid JSON/);
  });
});
