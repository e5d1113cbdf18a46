// The quality a JPEG was saved at, estimated from its quantisation tables as
// the server does (src/image/jpeg_quality.c): the IJG quality whose scaled
// standard tables (ITU-T T.81 Annex K) are nearest. Used when the page itself
// has to encode a JPEG photo's result (a feathered blend), so that it keeps
// about the photo's size instead of a fixed quality.

const LUMA = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
  14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
  49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
  24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99].concat(new Array(32).fill(99));
const ZIGZAG = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48,
  41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
  30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

function scaled(base, q) {
  const scale = q < 50 ? Math.floor(5000 / q) : 200 - 2 * q;
  return Math.min(255, Math.max(1, Math.floor((base * scale + 50) / 100)));
}

// Quality 1..100 of the JPEG bytes `b` (a Uint8Array of at least its headers), or null.
export function jpegQuality(b) {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  const t = [null, null];
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return null;
    const m = b[p + 1];
    if (m === 0xff) { p++; continue; }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { p += 2; continue; }
    if (m === 0xda || m === 0xd9) break;
    const len = (b[p + 2] << 8) | b[p + 3];
    if (len < 2 || p + 2 + len > b.length) return null;
    if (m === 0xdb) {
      for (let q = p + 4; q < p + 2 + len;) {
        const prec = b[q] >> 4, id = b[q] & 15, n = prec ? 2 : 1;
        if (prec > 1 || id > 3 || q + 1 + 64 * n > p + 2 + len) return null;
        if (id < 2) {
          t[id] = new Array(64);
          for (let k = 0; k < 64; k++) t[id][ZIGZAG[k]] = prec ? (b[q + 1 + 2 * k] << 8) | b[q + 2 + 2 * k] : b[q + 1 + k];
        }
        q += 1 + 64 * n;
      }
    }
    p += 2 + len;
  }
  if (!t[0]) return null;
  let best = Infinity, bestQ = null;
  for (let q = 1; q <= 100; q++) {
    let err = 0;
    for (let i = 0; i < 64; i++) {
      err += Math.abs(t[0][i] - scaled(LUMA[i], q));
      if (t[1]) err += Math.abs(t[1][i] - scaled(CHROMA[i], q));
    }
    if (err <= best) { best = err; bestQ = q; }
  }
  return bestQ;
}
