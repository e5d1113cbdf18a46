// A zoomable, pannable canvas view of one image-sized scene.
//
// The view owns the screen transform (zoom, pan), the canvas backing store
// (device pixels), and the gestures that move the view: mouse wheel, middle
// button drag, the pan tool, two-finger pinch, arrow keys. Everything else a
// pointer does goes to `handler` ({down, move, up, cancel, hover}) in image
// coordinates. Drawing is delegated: `drawScene(ctx)` draws in image pixels
// (the transform is set), `drawOverlay(ctx)` in CSS pixels.

const MIN_ZOOM = 0.02;
const MAX_ZOOM = 32;

export class View {
  constructor(canvas, { drawScene, drawOverlay, onZoom } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.drawScene = drawScene || (() => {});
    this.drawOverlay = drawOverlay || (() => {});
    this.onZoom = onZoom || (() => {});
    this.imageW = 0;
    this.imageH = 0;
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.cssW = 1;
    this.cssH = 1;
    this.dpr = 1;
    this.handler = null;      // the active tool
    this.panMode = false;     // pan tool selected
    this.pointers = new Map(); // pointerId -> {x, y} in CSS px
    this.gesture = null;       // 'tool' | 'pan' | 'pinch'
    this.pending = false;
    this.fitted = true;       // re-fit on resize until the user zooms
    this.hover = null;        // last pointer position (CSS px) or null

    new ResizeObserver(() => this.resize()).observe(canvas);
    canvas.addEventListener('pointerdown', (e) => this.pointerDown(e));
    canvas.addEventListener('pointermove', (e) => this.pointerMove(e));
    canvas.addEventListener('pointerup', (e) => this.pointerUp(e));
    canvas.addEventListener('pointercancel', (e) => this.pointerUp(e, true));
    canvas.addEventListener('pointerleave', () => { this.hover = null; this.request(); });
    canvas.addEventListener('wheel', (e) => this.wheel(e), { passive: false });
    canvas.addEventListener('keydown', (e) => this.key(e));
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());
    this.resize();
  }

  // ---------------------------------------------------------------- geometry
  setImageSize(w, h, keepView = false) {
    const same = w === this.imageW && h === this.imageH;
    this.imageW = w;
    this.imageH = h;
    if (!(keepView && same)) this.fit();
    this.request();
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    this.cssW = Math.max(1, r.width);
    this.cssH = Math.max(1, r.height);
    this.dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.cssW * this.dpr);
    const h = Math.round(this.cssH * this.dpr);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    if (this.fitted) this.fit();
    this.drawNow();
  }

  fit() {
    this.fitted = true;
    if (!this.imageW) return;
    const pad = 16;
    const z = Math.min((this.cssW - pad) / this.imageW, (this.cssH - pad) / this.imageH, 1);
    this.zoom = Math.max(MIN_ZOOM, z);
    this.panX = (this.cssW - this.imageW * this.zoom) / 2;
    this.panY = (this.cssH - this.imageH * this.zoom) / 2;
    this.onZoom(this.zoom);
    this.request();
  }

  // Zooms to z keeping the point (cx, cy) (CSS px; default the centre) still.
  zoomTo(z, cx = this.cssW / 2, cy = this.cssH / 2) {
    z = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, z));
    const ix = (cx - this.panX) / this.zoom;
    const iy = (cy - this.panY) / this.zoom;
    this.zoom = z;
    this.panX = cx - ix * z;
    this.panY = cy - iy * z;
    this.fitted = false;
    this.onZoom(this.zoom);
    this.request();
  }

  zoomBy(f, cx, cy) { this.zoomTo(this.zoom * f, cx, cy); }

  panBy(dx, dy) {
    this.panX += dx;
    this.panY += dy;
    this.fitted = false;
    this.request();
  }

  // CSS px relative to the canvas -> image px (fractional).
  toImage(x, y) { return { x: (x - this.panX) / this.zoom, y: (y - this.panY) / this.zoom }; }
  toScreen(x, y) { return { x: x * this.zoom + this.panX, y: y * this.zoom + this.panY }; }

  local(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  // ----------------------------------------------------------------- drawing
  request() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.drawNow(); });
  }

  drawNow() {
    const { ctx, dpr } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.imageW) {
      ctx.setTransform(dpr * this.zoom, 0, 0, dpr * this.zoom, dpr * this.panX, dpr * this.panY);
      ctx.imageSmoothingEnabled = this.zoom < 2;
      ctx.imageSmoothingQuality = 'high';
      this.drawScene(ctx, this);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.drawOverlay(ctx, this);
  }

  // ---------------------------------------------------------------- gestures
  pointerDown(e) {
    this.canvas.focus({ preventScroll: true });
    const p = this.local(e);
    this.pointers.set(e.pointerId, p);
    this.canvas.setPointerCapture(e.pointerId);
    e.preventDefault();
    if (this.pointers.size === 2) {
      // A second finger turns a stroke into a pinch: the stroke is dropped.
      if (this.gesture === 'tool' && this.handler) this.handler.cancel?.();
      this.gesture = 'pinch';
      this.pinchStart();
      return;
    }
    if (this.pointers.size > 2) return;
    const wantsPan = this.panMode || e.button === 1 || e.button === 2 || (e.button === 0 && e.altKey);
    if (!wantsPan && e.button === 0 && this.handler && this.imageW) {
      const ip = this.toImage(p.x, p.y);
      if (this.handler.down(ip, e, p) !== false) {
        this.gesture = 'tool';
        return;
      }
    }
    if (wantsPan) {
      this.gesture = 'pan';
      this.canvas.classList.add('panning');
    }
  }

  pointerMove(e) {
    const p = this.local(e);
    this.hover = e.pointerType === 'touch' ? null : p;
    const prev = this.pointers.get(e.pointerId);
    if (!prev) { this.handler?.hover?.(this.toImage(p.x, p.y), p); this.request(); return; }
    this.pointers.set(e.pointerId, p);
    if (this.gesture === 'pinch') this.pinchMove();
    else if (this.gesture === 'pan') this.panBy(p.x - prev.x, p.y - prev.y);
    else if (this.gesture === 'tool') {
      const evs = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      for (const ce of evs.length ? evs : [e]) {
        const cp = this.local(ce);
        this.handler.move(this.toImage(cp.x, cp.y), ce, cp);
      }
    }
    this.request();
  }

  pointerUp(e, cancelled = false) {
    if (!this.pointers.has(e.pointerId)) return;
    this.pointers.delete(e.pointerId);
    if (this.gesture === 'tool') {
      const p = this.local(e);
      if (cancelled) this.handler.cancel?.();
      else this.handler.up(this.toImage(p.x, p.y), e, p);
      this.gesture = null;
    } else if (this.gesture === 'pinch') {
      if (this.pointers.size < 2) this.gesture = this.pointers.size === 1 ? 'pan' : null;
    } else if (this.pointers.size === 0) {
      this.gesture = null;
    }
    if (this.pointers.size === 0) this.canvas.classList.remove('panning');
    this.request();
  }

  pinchStart() {
    const [a, b] = [...this.pointers.values()];
    this.pinch = { d: Math.hypot(a.x - b.x, a.y - b.y) || 1, cx: (a.x + b.x) / 2, cy: (a.y + b.y) / 2 };
  }

  pinchMove() {
    const [a, b] = [...this.pointers.values()];
    const d = Math.hypot(a.x - b.x, a.y - b.y) || 1;
    const cx = (a.x + b.x) / 2;
    const cy = (a.y + b.y) / 2;
    this.panBy(cx - this.pinch.cx, cy - this.pinch.cy);
    this.zoomBy(d / this.pinch.d, cx, cy);
    this.pinch = { d, cx, cy };
  }

  wheel(e) {
    if (!this.imageW) return;
    e.preventDefault();
    const p = this.local(e);
    if (e.shiftKey && !e.ctrlKey) {
      this.panBy(-e.deltaY, -e.deltaX);
      return;
    }
    const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 400 : 1;
    this.zoomBy(Math.exp((-e.deltaY * unit) / 400), p.x, p.y);
  }

  key(e) {
    const step = e.shiftKey ? 200 : 50;
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    const m = moves[e.key];
    if (m && this.imageW) {
      e.preventDefault();
      this.panBy(m[0], m[1]);
    }
  }
}
