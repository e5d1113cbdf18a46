// Hand-written canvas charts for the dashboard: a time-series line chart with
// reference lines, shaded bands and event markers, and a heat strip (one row
// per CPU core). Time runs along x over a fixed window ending now.

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function themeColors(canvas) {
  const cs = getComputedStyle(canvas);
  return {
    fg: cs.getPropertyValue('--muted').trim() || '#5b6470',
    line: cs.getPropertyValue('--line').trim() || '#d5d9df',
  };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtAgo(s) {
  if (s === 0) return 'now';
  return s % 60 === 0 ? `-${s / 60} min` : `-${s} s`;
}

class CanvasChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.last = null;
    new ResizeObserver(() => { if (this.last) this.draw(this.last); }).observe(canvas);
  }

  // Sizes the backing store to the element; returns {w, h} in CSS px.
  prepare() {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width));
    const h = Math.max(1, Math.round(r.height));
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.ctx.clearRect(0, 0, w, h);
    return { w, h };
  }

  // Starts drawing `d`: keeps it (to redraw on resize), sizes the canvas and
  // returns {ctx, w, h, colors, win (s), now (ms), t0 (ms, the window's start)}.
  begin(d) {
    this.last = d;
    const { w, h } = this.prepare();
    const win = d.window || 300;
    const now = d.now || Date.now();
    return { ctx: this.ctx, w, h, colors: themeColors(this.canvas), win, now, t0: now - win * 1000 };
  }

  // x of time t (ms) in `area` for a window of `win` s starting at t0.
  static timeX(area, t0, win) {
    return (t) => area.x + ((t - t0) / (win * 1000)) * area.w;
  }

  // The time axis along the bottom: ticks every minute (or 15 s for short windows).
  timeAxis(ctx, area, win, colors) {
    const step = win > 120 ? 60 : 15;
    ctx.fillStyle = colors.fg;
    ctx.strokeStyle = colors.line;
    ctx.font = '10px system-ui, sans-serif';
    ctx.textBaseline = 'top';
    for (let s = 0; s <= win; s += step) {
      const x = area.x + area.w - (s / win) * area.w;
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, area.y + area.h);
      ctx.lineTo(Math.round(x) + 0.5, area.y + area.h + 3);
      ctx.stroke();
      const label = fmtAgo(s);
      const tw = ctx.measureText(label).width;
      const tx = Math.min(area.x + area.w - tw, Math.max(area.x, x - tw / 2));
      if (s === 0 || x - tw / 2 > area.x + 24) ctx.fillText(label, tx, area.y + area.h + 4);
    }
  }
}

// Line chart. draw({now (ms), window (s), series: [{label, color, points: [[tMs, v]], fill, dash}],
// min, max (fixed or auto), format(v), refs: [{value, label, color}], bands: [{t0, t1, color}],
// markers: [{t, label, color}]}).
export class TimeChart extends CanvasChart {
  draw(d) {
    const { ctx, w, h, colors, win, now, t0 } = this.begin(d);
    const fmt = d.format || ((v) => String(Math.round(v)));
    let max = d.max;
    if (max == null) {
      let m = 0;
      for (const s of d.series) for (const [t, v] of s.points) if (t >= t0 && v > m) m = v;
      for (const r of d.refs || []) if (r.value > m) m = r.value;
      max = niceMax(m * 1.05);
    }
    const min = d.min || 0;
    ctx.font = '10px system-ui, sans-serif';
    let labelW = 0;
    for (let i = 0; i <= 4; i += 2) labelW = Math.max(labelW, ctx.measureText(fmt(min + ((max - min) * i) / 4)).width);
    labelW += 6;
    const area = { x: labelW, y: 6, w: w - labelW - 4, h: h - 22 };
    const X = CanvasChart.timeX(area, t0, win);
    const Y = (v) => area.y + area.h - ((Math.min(max, Math.max(min, v)) - min) / (max - min || 1)) * area.h;

    // bands (e.g. admission paused)
    for (const b of d.bands || []) {
      const x0 = Math.max(area.x, X(b.t0));
      const x1 = Math.min(area.x + area.w, X(b.t1 ?? now));
      if (x1 <= x0) continue;
      ctx.fillStyle = b.color;
      ctx.fillRect(x0, area.y, x1 - x0, area.h);
    }
    // grid and value labels
    ctx.strokeStyle = colors.line;
    ctx.fillStyle = colors.fg;
    ctx.lineWidth = 1;
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = min + ((max - min) * i) / 4;
      const y = Math.round(Y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(area.x, y);
      ctx.lineTo(area.x + area.w, y);
      ctx.stroke();
      if (i % 2 === 0) {
        const s = fmt(v);
        ctx.fillText(s, area.x - 4 - ctx.measureText(s).width, y);
      }
    }
    this.timeAxis(ctx, area, win, colors);
    // reference lines (budget, marks)
    for (const r of d.refs || []) {
      if (!(r.value >= min && r.value <= max)) continue;
      const y = Math.round(Y(r.value)) + 0.5;
      ctx.save();
      ctx.strokeStyle = r.color;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      ctx.moveTo(area.x, y);
      ctx.lineTo(area.x + area.w, y);
      ctx.stroke();
      ctx.restore();
      if (r.label) {
        ctx.fillStyle = r.color;
        ctx.textBaseline = 'bottom';
        ctx.fillText(r.label, area.x + 4, y - 1);
      }
    }
    // series
    ctx.save();
    ctx.beginPath();
    ctx.rect(area.x, area.y - 1, area.w, area.h + 2);
    ctx.clip();
    for (const s of d.series) {
      const pts = s.points.filter(([t, v]) => t >= t0 - 5000 && Number.isFinite(v));
      if (!pts.length) continue;
      ctx.strokeStyle = s.color;
      ctx.lineWidth = s.width || 1.6;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      pts.forEach(([t, v], i) => (i ? ctx.lineTo(X(t), Y(v)) : ctx.moveTo(X(t), Y(v))));
      if (pts.length === 1) ctx.lineTo(X(pts[0][0]) + 2, Y(pts[0][1]));
      ctx.stroke();
      if (s.fill) {
        ctx.lineTo(X(pts[pts.length - 1][0]), Y(min));
        ctx.lineTo(X(pts[0][0]), Y(min));
        ctx.closePath();
        ctx.globalAlpha = 0.15;
        ctx.fillStyle = s.color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    }
    ctx.restore();
    // nothing to show yet: say so
    const anyPoint = d.series.some((s) => s.points.some(([t, v]) => t >= t0 && Number.isFinite(v)));
    if (!anyPoint && d.empty) {
      ctx.fillStyle = colors.fg;
      ctx.font = '12px system-ui, sans-serif';
      ctx.textBaseline = 'middle';
      const tw = ctx.measureText(d.empty).width;
      ctx.fillText(d.empty, area.x + Math.max(4, (area.w - tw) / 2), area.y + area.h / 2);
      ctx.font = '10px system-ui, sans-serif';
    }
    // markers (pause / resume)
    ctx.font = '10px system-ui, sans-serif';
    let labelRow = 0;     // labels of markers close together go on successive rows
    let lastLabelX = -Infinity;
    for (const m of d.markers || []) {
      if (m.t < t0) continue;
      const x = Math.round(X(m.t)) + 0.5;
      ctx.strokeStyle = m.color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x, area.y);
      ctx.lineTo(x, area.y + area.h);
      ctx.stroke();
      ctx.fillStyle = m.color;
      ctx.beginPath();
      ctx.moveTo(x - 4, area.y);
      ctx.lineTo(x + 4, area.y);
      ctx.lineTo(x, area.y + 6);
      ctx.fill();
      if (m.label) {
        ctx.textBaseline = 'top';
        const tw = ctx.measureText(m.label).width;
        labelRow = x - lastLabelX < tw + 6 ? (labelRow + 1) % 3 : 0;
        lastLabelX = x;
        ctx.fillText(m.label, Math.min(x + 3, area.x + area.w - tw), area.y + 7 + labelRow * 11);
      }
    }
  }
}

// Heat strip: one row per core, colour = use in %. draw({now, window, samples: [{t, values}]}).
export class HeatStrip extends CanvasChart {
  draw(d) {
    const { ctx, w, h, colors, win, t0 } = this.begin(d);
    const rows = Math.max(1, d.rows || 1);
    ctx.font = '10px system-ui, sans-serif';
    const labelW = ctx.measureText(String(rows - 1)).width + 8;
    const area = { x: labelW, y: 4, w: w - labelW - 4, h: h - 20 };
    const rowH = area.h / rows;
    const X = CanvasChart.timeX(area, t0, win);
    ctx.fillStyle = colors.line;
    ctx.globalAlpha = 0.35;
    ctx.fillRect(area.x, area.y, area.w, area.h);
    ctx.globalAlpha = 1;
    const s = d.samples.filter((x) => x.t >= t0 - 10000);
    for (let i = 0; i < s.length; i++) {
      const xa = Math.max(area.x, X(i ? s[i - 1].t : s[i].t - 1000));
      const xb = Math.min(area.x + area.w, X(s[i].t));
      if (xb <= xa) continue;
      for (let r = 0; r < rows; r++) {
        const v = s[i].values[r];
        if (!Number.isFinite(v)) continue;
        ctx.fillStyle = heat(v / 100);
        ctx.fillRect(xa, area.y + r * rowH, xb - xa + 0.5, Math.max(1, rowH - (rowH > 4 ? 1 : 0)));
      }
    }
    ctx.fillStyle = colors.fg;
    ctx.textBaseline = 'middle';
    const every = Math.ceil(rows / Math.max(1, Math.floor(area.h / 12)));
    for (let r = 0; r < rows; r += every) ctx.fillText(String(r), 2, area.y + (r + 0.5) * rowH);
    this.timeAxis(ctx, area, win, colors);
  }
}

// 0..1 -> a blue-to-red ramp.
export function heat(f) {
  f = Math.min(1, Math.max(0, f || 0));
  const stops = [[0, [38, 70, 120]], [0.35, [44, 160, 44]], [0.7, [255, 180, 0]], [1, [214, 39, 40]]];
  for (let i = 1; i < stops.length; i++) {
    if (f <= stops[i][0]) {
      const [a, ca] = stops[i - 1];
      const [b, cb] = stops[i];
      const t = (f - a) / (b - a);
      const c = ca.map((x, k) => Math.round(x + (cb[k] - x) * t));
      return `rgb(${c[0]},${c[1]},${c[2]})`;
    }
  }
  return 'rgb(214,39,40)';
}
