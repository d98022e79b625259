import { InvalidDocumentError } from '../errors/index.js';

/** Documents larger than this are refused before parsing (the distribution spec's manifest limit is 4 MiB). */
export const MAX_DOCUMENT_BYTES = 4 << 20;

export interface JsonOptions {
  /** Refuse input larger than this many bytes; default MAX_DOCUMENT_BYTES. */
  maxBytes?: number;
}

/**
 * Untrusted bytes to a JSON value. `what` names the document in errors ("image manifest"); too-large input is
 * refused before it is decoded, and a syntax error says where (line, column) and what was found there.
 */
export function parseJson(data: string | Uint8Array, what: string, opts: JsonOptions = {}): unknown {
  const maxBytes = opts.maxBytes ?? MAX_DOCUMENT_BYTES;
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  if (size > maxBytes) {
    throw new InvalidDocumentError(what, '', `document is ${size} bytes, more than the ${maxBytes} allowed`, {
      hint: 'manifests, indexes and configs are small JSON documents; this is not one, or it is hostile',
    });
  }
  const text = typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString();
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidDocumentError(what, '', `is not valid JSON: ${syntaxError(text) ?? (err as Error).message}`);
  }
}

/**
 * Where JSON.parse failed, found by a small validating scan (only run after a failure): V8's messages name a
 * position for some errors and quote the input for others, and quoting hostile input into logs is what we avoid.
 */
function syntaxError(text: string): string | undefined {
  let i = 0;
  const fail = (expected: string): never => {
    const found = i >= text.length ? 'end of input' : JSON.stringify(text[i]);
    const before = text.slice(0, i);
    const line = before.split('\n').length;
    const column = i - before.lastIndexOf('\n');
    throw new JsonSyntax(`expected ${expected}, found ${found} at line ${line} column ${column} (position ${i})`);
  };
  const ws = () => {
    while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r') i++;
  };
  const literal = (re: RegExp, expected: string) => {
    re.lastIndex = i;
    if (!re.test(text)) fail(expected);
    i = re.lastIndex;
  };
  const string = () => {
    i++;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (Number.isNaN(c) || c < 0x20) fail('a closing quote');
      if (c === 0x5c) literal(/\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y, 'an escape sequence');
      else i++;
    }
    i++;
  };
  const container = (close: '}' | ']') => {
    i++;
    ws();
    if (text[i] !== close) {
      for (;;) {
        if (close === '}') {
          ws();
          if (text[i] !== '"') fail('a property name in double quotes');
          string();
          ws();
          if (text[i] !== ':') fail('":"');
          i++;
        }
        value();
        ws();
        if (text[i] === close) break;
        if (text[i] !== ',') fail(`"," or "${close}"`);
        i++;
      }
    }
    i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '"') string();
    else if (c === '{') container('}');
    else if (c === '[') container(']');
    else literal(/-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y, 'a JSON value');
  };
  try {
    value();
    ws();
    if (i < text.length) fail('end of input');
  } catch (err) {
    if (err instanceof JsonSyntax) return err.message;
    return undefined; // too deeply nested for this scan: V8's own message it is
  }
  return undefined;
}

class JsonSyntax extends Error {}
