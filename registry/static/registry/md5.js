/**
 * MD5 of a file, computed incrementally in the browser (WebCrypto has no MD5).
 *
 * The registry keeps a video's MD5 beside its vPDQ hash because it is the one video signal
 * StopNCII's partners exchange. The file is read in chunks (`md5File`), so a large video is
 * never held in memory whole, let alone twice. MD5 here is an identifier, not a protection.
 * The algorithm is RFC 1321; tests/browser/test_md5_js.py checks it against Python's hashlib.
 */

// The per-round shift amounts and the sine-derived constants of RFC 1321.
const SHIFTS = [
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
  14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
  21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];
const SINES = Int32Array.from({ length: 64 }, (_, i) =>
  Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32),
);

export class Md5 {
  constructor() {
    this.state = Int32Array.of(0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476);
    this.block = new Uint8Array(64);
    this.words = new Int32Array(16);
    this.filled = 0;
    this.length = 0;
  }

  /** Add `bytes` (a Uint8Array) to the message. */
  update(bytes) {
    let offset = 0;
    this.length += bytes.length;
    if (this.filled) {
      const take = Math.min(64 - this.filled, bytes.length);
      this.block.set(bytes.subarray(0, take), this.filled);
      this.filled += take;
      offset = take;
      if (this.filled < 64) return this;
      this.compress(this.block, 0);
      this.filled = 0;
    }
    for (; offset + 64 <= bytes.length; offset += 64) this.compress(bytes, offset);
    if (offset < bytes.length) {
      this.block.set(bytes.subarray(offset), 0);
      this.filled = bytes.length - offset;
    }
    return this;
  }

  /** The digest as 32 lowercase hex digits; the object must not be updated afterwards. */
  hex() {
    const bits = this.length * 8;
    const padding = new Uint8Array((this.filled < 56 ? 56 : 120) - this.filled + 8);
    padding[0] = 0x80;
    const view = new DataView(padding.buffer);
    view.setUint32(padding.length - 8, bits >>> 0, true);
    view.setUint32(padding.length - 4, Math.floor(bits / 2 ** 32), true);
    this.update(padding);
    let hex = "";
    for (const word of this.state) {
      for (let byte = 0; byte < 4; byte++) {
        hex += ((word >>> (8 * byte)) & 0xff).toString(16).padStart(2, "0");
      }
    }
    return hex;
  }

  compress(bytes, offset) {
    const words = this.words;
    for (let i = 0; i < 16; i++) {
      const at = offset + 4 * i;
      words[i] = bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24);
    }
    let [a, b, c, d] = this.state;
    for (let i = 0; i < 64; i++) {
      let f;
      let g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
      }
      const sum = (a + f + SINES[i] + words[g]) | 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << SHIFTS[i]) | (sum >>> (32 - SHIFTS[i])))) | 0;
    }
    const state = this.state;
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
  }
}

/** The MD5 of a Blob (a File), read `chunkSize` bytes at a time. */
export async function md5File(blob, { chunkSize = 4 * 1024 * 1024, onProgress } = {}) {
  const md5 = new Md5();
  for (let start = 0; start < blob.size; start += chunkSize) {
    const chunk = await blob.slice(start, start + chunkSize).arrayBuffer();
    md5.update(new Uint8Array(chunk));
    if (onProgress) onProgress(Math.min(blob.size, start + chunkSize), blob.size);
  }
  return md5.hex();
}
