/** The searchable text of a message as stored, before encryption, and as read back. */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Search text as stored (before encryption): the byte length of the header
 * text (u32, big-endian), the header text, then the body text, UTF-8. Not
 * compressed: SEARCH TEXT reads every message's text, and inflating costs
 * more than the disk it saves.
 */
export function encodeSearchText(text: { headers: string; body: string }): Uint8Array {
  const headers = encoder.encode(text.headers);
  const body = encoder.encode(text.body);
  const out = new Uint8Array(4 + headers.length + body.length);
  new DataView(out.buffer).setUint32(0, headers.length);
  out.set(headers, 4);
  out.set(body, 4 + headers.length);
  return out;
}

/** Search text as read back: the bytes, with strings decoded only if asked for. */
export class StoredSearchText {
  readonly headerBytes: Uint8Array;
  readonly bodyBytes: Uint8Array;
  #headers?: string;
  #body?: string;

  constructor(data: Uint8Array) {
    const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
    this.headerBytes = data.subarray(4, 4 + n);
    this.bodyBytes = data.subarray(4 + n);
  }

  get headers(): string {
    return this.#headers ??= decoder.decode(this.headerBytes);
  }

  get body(): string {
    return this.#body ??= decoder.decode(this.bodyBytes);
  }
}

export function decodeSearchText(data: Uint8Array): StoredSearchText {
  return new StoredSearchText(data);
}
