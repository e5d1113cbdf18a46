// The mask being painted: a list of strokes in image pixels, rendered onto an
// image-sized canvas (opaque tint where painted, transparent elsewhere), and
// the pixel work around it: the binary mask sent to the server, feathering,
// and compositing a result through a feathered edge.

export const TINT = 'rgb(255, 48, 96)';

export function makeCanvas(w, h) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

export class Mask {
  constructor() {
    this.canvas = makeCanvas(1, 1);
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
    this.strokes = [];
    this.current = null;
  }

  reset(w, h) {
    this.canvas.width = w;
    this.canvas.height = h;
    this.strokes = [];
    this.current = null;
  }

  get width() { return this.canvas.width; }
  get height() { return this.canvas.height; }

  // Starts a stroke (mode 'brush' | 'eraser', width in image px) at p.
  begin(mode, width, p) {
    this.current = { mode, width, pts: [p.x, p.y] };
    this.drawSegment(this.current, p.x, p.y, p.x, p.y);
  }

  extend(p) {
    const s = this.current;
    if (!s) return;
    const n = s.pts.length;
    const lx = s.pts[n - 2];
    const ly = s.pts[n - 1];
    if (Math.hypot(p.x - lx, p.y - ly) < 0.5) return;
    s.pts.push(p.x, p.y);
    this.drawSegment(s, lx, ly, p.x, p.y);
  }

  // Ends the stroke; returns it (the caller records it in the history) or null.
  end() {
    const s = this.current;
    this.current = null;
    if (!s) return null;
    this.strokes.push(s);
    return s;
  }

  // Drops the stroke in progress (e.g. a second finger turned it into a pinch).
  abort() {
    if (!this.current) return;
    this.current = null;
    this.render();
  }

  drawSegment(s, x0, y0, x1, y1) {
    const c = this.ctx;
    c.save();
    c.globalCompositeOperation = s.mode === 'eraser' ? 'destination-out' : 'source-over';
    c.strokeStyle = TINT;
    c.fillStyle = TINT;
    c.lineCap = 'round';
    c.lineJoin = 'round';
    c.lineWidth = s.width;
    if (x0 === x1 && y0 === y1) {
      c.beginPath();
      c.arc(x0, y0, s.width / 2, 0, Math.PI * 2);
      c.fill();
    } else {
      c.beginPath();
      c.moveTo(x0, y0);
      c.lineTo(x1, y1);
      c.stroke();
    }
    c.restore();
  }

  // Replaces the whole mask with `canvas` (a tinted mask of the same size:
  // an opened file, grow, shrink, invert) as one more stroke, so that it is
  // undone like one and painting goes on on top of it. Returns the stroke.
  replace(canvas) {
    const s = { mode: 'bitmap', canvas, pts: [] };
    this.strokes.push(s);
    this.render();
    return s;
  }

  // Redraws every stroke from scratch (after undo, redo, clear).
  render() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    for (const s of this.strokes) {
      if (s.mode === 'bitmap') {
        this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
        this.ctx.drawImage(s.canvas, 0, 0);
        continue;
      }
      const p = s.pts;
      this.drawSegment(s, p[0], p[1], p[0], p[1]);
      for (let i = 2; i < p.length; i += 2) this.drawSegment(s, p[i - 2], p[i - 1], p[i], p[i + 1]);
    }
  }

  // {data: Uint8Array (1 = painted), count, bbox {x0,y0,x1,y1} (exclusive end) | null}.
  binary() {
    const w = this.canvas.width;
    const h = this.canvas.height;
    const px = this.ctx.getImageData(0, 0, w, h).data;
    const data = new Uint8Array(w * h);
    let count = 0;
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (let y = 0, i = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i++) {
        if (px[i * 4 + 3] > 0) {
          data[i] = 1;
          count++;
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
    }
    return { data, count, bbox: count ? { x0, y0, x1: x1 + 1, y1: y1 + 1 } : null, w, h };
  }
}

// One pass of a box blur of radius r along rows (dx = 1) or columns, zero outside.
function boxPass(src, dst, w, h, r, horizontal) {
  const n = horizontal ? w : h;
  const lines = horizontal ? h : w;
  const step = horizontal ? 1 : w;
  const inv = 1 / (2 * r + 1);
  for (let l = 0; l < lines; l++) {
    const base = horizontal ? l * w : l;
    let sum = 0;
    for (let k = 0; k <= Math.min(r, n - 1); k++) sum += src[base + k * step];
    for (let i = 0; i < n; i++) {
      dst[base + i * step] = sum * inv;
      const add = i + r + 1;
      const sub = i - r;
      if (add < n) sum += src[base + add * step];
      if (sub >= 0) sum -= src[base + sub * step];
    }
  }
}

// Feathering of radius `radius` px: returns {alpha: Float32Array (1 on the
// painted pixels, falling to 0 at `radius` px outside them), send: Uint8Array
// (1 wherever alpha > 0: what the server must fill)}.
export function feather(bin, radius) {
  const { w, h, data } = bin;
  const n = w * h;
  let a = new Float32Array(n);
  let b = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = data[i];
  const r = Math.max(1, Math.round(radius / 3));
  for (let pass = 0; pass < 3; pass++) {
    boxPass(a, b, w, h, r, true);
    boxPass(b, a, w, h, r, false);
  }
  const send = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = data[i] ? 1 : Math.min(1, 2 * a[i]);
    a[i] = v > 1e-3 ? v : 0;
    send[i] = a[i] > 0 ? 1 : 0;
  }
  return { alpha: a, send };
}

// Encodes a 0/1 mask as a black-and-white PNG (white = fill) of w x h.
export function maskPNG(send, w, h) {
  const c = makeCanvas(w, h);
  const ctx = c.getContext('2d');
  const img = ctx.createImageData(w, h);
  const d = img.data;
  for (let i = 0, j = 0; i < send.length; i++, j += 4) {
    const v = send[i] ? 255 : 0;
    d[j] = v;
    d[j + 1] = v;
    d[j + 2] = v;
    d[j + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvasBlob(c, 'image/png');
}

export function canvasBlob(canvas, type, quality) {
  return new Promise((resolve, reject) => {
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('The browser could not encode the image.'))), type, quality);
  });
}

// Pixels of a drawable (ImageBitmap/canvas) as ImageData.
export function pixelsOf(src, w, h) {
  const c = makeCanvas(w, h);
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(src, 0, 0);
  return ctx.getImageData(0, 0, w, h);
}

// before + (after - before) * alpha, into a new canvas.
export function composite(before, after, alpha, w, h) {
  const a = pixelsOf(before, w, h);
  const b = pixelsOf(after, w, h);
  const out = a.data;
  const src = b.data;
  for (let i = 0, j = 0; i < alpha.length; i++, j += 4) {
    const t = alpha[i];
    if (t <= 0) continue;
    out[j] += (src[j] - out[j]) * t;
    out[j + 1] += (src[j + 1] - out[j + 1]) * t;
    out[j + 2] += (src[j + 2] - out[j + 2]) * t;
    out[j + 3] += (src[j + 3] - out[j + 3]) * t;
  }
  const c = makeCanvas(w, h);
  c.getContext('2d').putImageData(a, 0, 0);
  return c;
}
