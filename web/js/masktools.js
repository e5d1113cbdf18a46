// Masks as files and whole-mask edits in the Remove tab: "Open mask…" (a
// grey, RGB or RGBA image; scaled to the photo when its size differs),
// "Save mask" (a black-and-white PNG of the photo's size), and grow, shrink
// and invert. Each edit replaces the mask as one stroke (Mask.replace), so it
// is undone, redone and painted over like any other.

import { makeCanvas, maskPNG, TINT } from './mask.js';
import { loadPhoto, saveBlob } from './photo.js';
import { $, prefs, showMessage } from './ui.js';
import { errorText } from './api.js';

export const GROW_MAX = 256; // the server's bound on mask_dilate, kept here too

// Grows (radius > 0) or shrinks (radius < 0) a 0/1 mask by a disc of |radius|
// pixels: grown, a pixel is set when a set pixel lies within that distance
// (dx² + dy² <= r²); shrunk, it stays set only when no unset pixel does.
// Outside the image counts as neither. Linear in the pixels: the vertical
// distance to the nearest target in each column (capped at r + 1), then
// along each row the lower envelope of the parabolas (x - q)² + v(q)².
// Returns a new Uint8Array.
export function dilate(data, w, h, radius) {
  const out = new Uint8Array(w * h);
  if (!radius) { out.set(data); return out; }
  const grow = radius > 0;
  const r = Math.abs(radius);
  const cap = r + 1;
  const vd = new Uint16Array(w * h);
  for (let x = 0; x < w; x++) {
    let d = cap;
    for (let i = x; i < w * h; i += w) {
      if ((data[i] !== 0) === grow) d = 0; else if (d < cap) d++;
      vd[i] = d;
    }
    d = cap;
    for (let i = x + (h - 1) * w; i >= 0; i -= w) {
      if (vd[i] === 0) d = 0; else if (d < cap) d++;
      if (d < vd[i]) vd[i] = d;
    }
  }
  const site = new Int32Array(w);
  const cut = new Float64Array(w + 1);
  const r2 = r * r;
  for (let y = 0; y < h; y++) {
    const o = y * w;
    let k = -1;
    for (let q = 0; q < w; q++) {
      const vq = vd[o + q];
      if (vq > r) continue;
      const fq = vq * vq + q * q;
      if (k < 0) { k = 0; site[0] = q; cut[0] = -Infinity; cut[1] = Infinity; continue; }
      let s;
      for (;;) { // drop the parabolas the new one hides; cut[0] is -inf
        const p = site[k];
        const vp = vd[o + p];
        s = (fq - (vp * vp + p * p)) / (2 * (q - p));
        if (s > cut[k]) break;
        k--;
      }
      k++;
      site[k] = q;
      cut[k] = s;
      cut[k + 1] = Infinity;
    }
    for (let x = 0, j = 0; x < w; x++) {
      let hit = false;
      if (k >= 0) {
        while (cut[j + 1] < x) j++;
        const dx = x - site[j];
        const dv = vd[o + site[j]];
        hit = dx * dx + dv * dv <= r2;
      }
      out[o + x] = grow ? (hit ? 1 : 0) : (data[o + x] && !hit ? 1 : 0);
    }
  }
  return out;
}

// A mask canvas (the tint where set, transparent elsewhere) from a 0/1 mask.
export function tintCanvas(data, w, h) {
  const c = makeCanvas(w, h);
  const ctx = c.getContext('2d');
  const img = ctx.createImageData(w, h);
  const px = img.data;
  const [r, g, b] = TINT.match(/\d+/g).map(Number);
  for (let i = 0, j = 0; i < data.length; i++, j += 4) {
    if (!data[i]) continue;
    px[j] = r; px[j + 1] = g; px[j + 2] = b; px[j + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

// Reads a mask image into a 0/1 mask of w x h: where it has transparency,
// its alpha marks the area (at least half opaque); otherwise its light
// pixels do (the brightest channel at least 128), so grey, black-and-white
// and coloured-on-black masks all work. A mask of another size is scaled
// (nearest neighbour). Returns {data, note} (note: '' or what was scaled).
export async function readMask(blob, name, w, h) {
  const img = await loadPhoto(blob, name);
  const c = makeCanvas(w, h);
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img.bitmap, 0, 0, w, h);
  const px = ctx.getImageData(0, 0, w, h).data;
  let alpha = false;
  for (let j = 3; j < px.length; j += 4) if (px[j] < 255) { alpha = true; break; }
  const data = new Uint8Array(w * h);
  for (let i = 0, j = 0; i < data.length; i++, j += 4) {
    data[i] = alpha ? (px[j + 3] >= 128 ? 1 : 0) : (Math.max(px[j], px[j + 1], px[j + 2]) >= 128 ? 1 : 0);
  }
  const note = img.width !== w || img.height !== h
    ? `The mask is ${img.width}×${img.height}; it was scaled to the photo's ${w}×${h}.` : '';
  return { data, note };
}

function maskName(photoName) {
  return `${(photoName || 'photo').replace(/\.[^./\\]+$/, '')}-mask.png`;
}

export class MaskTools {
  constructor(editor) {
    this.ed = editor;
    this.el = {
      open: $('ed-mask-open'), file: $('ed-mask-file'), save: $('ed-mask-save'),
      px: $('ed-grow-px'), grow: $('ed-grow'), shrink: $('ed-shrink'), invert: $('ed-invert'),
      note: $('ed-mask-note'),
    };
    const e = this.el;
    if (window.matchMedia('(max-width: 760px)').matches) $('ed-masktools').open = false; // as Settings: room for the photo
    e.px.value = String(Math.min(GROW_MAX, Math.max(1, prefs.get('grow', 5))));
    e.open.addEventListener('click', () => this.pick());
    e.file.addEventListener('change', () => {
      const f = e.file.files[0];
      e.file.value = '';
      if (f) this.open(f, f.name);
    });
    e.save.addEventListener('click', () => this.save());
    e.grow.addEventListener('click', () => this.grow(1));
    e.shrink.addEventListener('click', () => this.grow(-1));
    e.invert.addEventListener('click', () => this.invert());
    e.px.addEventListener('change', () => { this.amount(); });
  }

  ready() { return !!(this.ed.current && !this.ed.job && !this.ed.mask.current); }

  note(msg) { showMessage(this.el.note, msg); }

  pick() { if (this.ready()) this.el.file.click(); }

  // Pixels of the grow/shrink control, clamped to 1..GROW_MAX (and shown so).
  amount() {
    let n = Math.round(Number(this.el.px.value));
    if (!Number.isFinite(n) || n < 1) n = 1;
    if (n > GROW_MAX) n = GROW_MAX;
    this.el.px.value = String(n);
    prefs.set('grow', n);
    return n;
  }

  // Replaces the mask with a 0/1 mask of the photo's size, as one undoable stroke.
  apply(data) {
    const { width: w, height: h } = this.ed.mask;
    const s = this.ed.mask.replace(tintCanvas(data, w, h));
    this.ed.push({ type: 'stroke', stroke: s });
  }

  async open(blob, name) {
    if (!this.ready()) {
      this.ed.showError(this.ed.current ? 'Wait for the running job to finish before opening a mask.' : 'Open a photo first, then its mask.');
      return;
    }
    this.ed.showError('');
    const { width: w, height: h } = this.ed.mask;
    let m;
    try {
      m = await readMask(blob, name, w, h);
    } catch (err) {
      this.ed.showError(`Cannot use ${name || 'this file'} as a mask: ${errorText(err)}`);
      return;
    }
    this.apply(m.data);
    const n = m.data.reduce((a, v) => a + v, 0);
    this.note(`${m.note ? `${m.note} ` : ''}${n ? '' : 'It selects nothing (it is all dark). '}Paint or erase to change it; Ctrl+Z removes it.`);
  }

  async save() {
    if (!this.ed.current) return;
    const bin = this.ed.mask.binary();
    try {
      saveBlob(await maskPNG(bin.data, bin.w, bin.h), maskName(this.ed.photo && this.ed.photo.name));
    } catch (err) {
      this.ed.showError(errorText(err));
    }
  }

  grow(dir) {
    if (!this.ready()) return;
    const bin = this.ed.mask.binary();
    if (!bin.count) { this.ed.showError('The mask is empty: paint or open one first.'); return; }
    this.ed.showError('');
    const n = this.amount();
    this.apply(dilate(bin.data, bin.w, bin.h, dir * n));
    this.note(`${dir > 0 ? 'Grown' : 'Shrunk'} by ${n} px.`);
  }

  invert() {
    if (!this.ready()) return;
    const bin = this.ed.mask.binary();
    for (let i = 0; i < bin.data.length; i++) bin.data[i] ^= 1;
    this.apply(bin.data);
    this.note('Inverted: everything else is now selected.');
  }

  update() {
    const on = this.ready();
    const painted = on && this.ed.mask.strokes.length > 0;
    const e = this.el;
    e.open.disabled = !on;
    e.save.disabled = !this.ed.current;
    e.grow.disabled = !painted;
    e.shrink.disabled = !painted;
    e.invert.disabled = !on;
    if (!this.ed.current) this.note('');
  }

  // Shift+O open, Shift+S save, G grow, Shift+G shrink, I invert. True when handled.
  shortcut(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return false;
    switch (ev.key) {
      case 'O': if (!ev.shiftKey) return false; this.pick(); return true;
      case 'S': if (!ev.shiftKey) return false; this.save(); return true;
      case 'g': this.grow(1); return true;
      case 'G': this.grow(ev.shiftKey ? -1 : 1); return true;
      case 'i': case 'I': this.invert(); return true;
      default: return false;
    }
  }
}
