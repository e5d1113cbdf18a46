// Before/after comparison on a View: a vertical divider (the original on its
// left, the result on its right) that can be dragged on the canvas or moved
// with a range input, and "hold to see the original" (a key or a button).

export class Compare {
  // els: {bar, toggle, range, hold}; view: the View; onChange: redraw request.
  constructor(els, view) {
    this.els = els;
    this.view = view;
    this.before = null;   // drawable
    this.available = false;
    this.split = true;    // divider shown
    this.pos = 0.5;       // divider, fraction of the width
    this.holding = false;
    this.dragging = false;

    els.range.addEventListener('input', () => {
      this.pos = Number(els.range.value) / 100;
      view.request();
    });
    els.toggle.addEventListener('click', () => this.toggle());
    const hold = (on) => (e) => { e.preventDefault(); this.setHolding(on); };
    els.hold.addEventListener('pointerdown', hold(true));
    els.hold.addEventListener('pointerup', hold(false));
    els.hold.addEventListener('pointerleave', hold(false));
    els.hold.addEventListener('pointercancel', hold(false));
    els.hold.addEventListener('keydown', (e) => { if (e.key === ' ' || e.key === 'Enter') { e.preventDefault(); this.setHolding(true); } });
    els.hold.addEventListener('keyup', (e) => { if (e.key === ' ' || e.key === 'Enter') { e.preventDefault(); this.setHolding(false); } });
    els.hold.addEventListener('blur', () => this.setHolding(false));
    els.hold.addEventListener('click', (e) => e.preventDefault());
  }

  // Makes `before` the image shown on the left / while holding; null hides the bar.
  setBefore(before) {
    this.before = before;
    this.available = !!before;
    this.els.bar.hidden = !this.available;
    if (this.available) {
      this.split = true;
      this.pos = 0.5;
      this.els.range.value = '50';
      this.els.toggle.setAttribute('aria-pressed', 'true');
    }
    this.view.request();
  }

  toggle() {
    if (!this.available) return;
    this.split = !this.split;
    this.els.toggle.setAttribute('aria-pressed', String(this.split));
    this.els.range.disabled = !this.split;
    this.view.request();
  }

  setHolding(on) {
    if (!this.available) on = false;
    if (this.holding === on) return;
    this.holding = on;
    this.els.hold.setAttribute('aria-pressed', String(on));
    this.view.request();
  }

  // Draws the after image, then the before image where it shows.
  drawScene(ctx, after, w, h) {
    if (this.available && this.holding) {
      ctx.drawImage(this.before, 0, 0);
      return;
    }
    ctx.drawImage(after, 0, 0);
    if (this.available && this.split) {
      const x = Math.round(this.pos * w);
      if (x > 0) ctx.drawImage(this.before, 0, 0, x, h, 0, 0, x, h);
    }
  }

  drawOverlay(ctx) {
    const v = this.view;
    if (!this.available || !v.imageW) return;
    if (this.holding) {
      label(ctx, 'Original', 12, 12);
      return;
    }
    if (!this.split) return;
    const s = v.toScreen(this.pos * v.imageW, 0);
    const top = Math.max(0, v.panY);
    const bottom = Math.min(v.cssH, v.panY + v.imageH * v.zoom);
    ctx.save();
    ctx.strokeStyle = 'rgba(255,255,255,.95)';
    ctx.lineWidth = 2;
    ctx.shadowColor = 'rgba(0,0,0,.6)';
    ctx.shadowBlur = 3;
    ctx.beginPath();
    ctx.moveTo(s.x, top);
    ctx.lineTo(s.x, bottom);
    ctx.stroke();
    const cy = (top + bottom) / 2;
    ctx.fillStyle = '#fff';
    ctx.beginPath();
    ctx.arc(s.x, cy, 11, 0, Math.PI * 2);
    ctx.fill();
    ctx.shadowBlur = 0;
    ctx.fillStyle = '#333';
    ctx.beginPath();
    ctx.moveTo(s.x - 7, cy); ctx.lineTo(s.x - 2, cy - 5); ctx.lineTo(s.x - 2, cy + 5); ctx.closePath();
    ctx.moveTo(s.x + 7, cy); ctx.lineTo(s.x + 2, cy - 5); ctx.lineTo(s.x + 2, cy + 5); ctx.closePath();
    ctx.fill();
    ctx.restore();
    label(ctx, 'Before', Math.max(8, s.x - 70), top + 8);
    label(ctx, 'After', Math.min(v.cssW - 60, s.x + 10), top + 8);
  }

  // Pointer helpers: true when the CSS-px point is on the divider's grip.
  hit(p) {
    const v = this.view;
    if (!this.available || !this.split || this.holding || !v.imageW) return false;
    const s = v.toScreen(this.pos * v.imageW, 0);
    const top = Math.max(0, v.panY);
    const bottom = Math.min(v.cssH, v.panY + v.imageH * v.zoom);
    const cy = (top + bottom) / 2;
    return Math.abs(p.x - s.x) <= 8 || Math.hypot(p.x - s.x, p.y - cy) <= 14;
  }

  dragTo(imageX) {
    const v = this.view;
    this.pos = Math.min(1, Math.max(0, imageX / v.imageW));
    this.els.range.value = String(Math.round(this.pos * 100));
    v.request();
  }
}

function label(ctx, text, x, y) {
  ctx.save();
  ctx.font = '600 12px system-ui, sans-serif';
  const w = ctx.measureText(text).width + 12;
  ctx.fillStyle = 'rgba(20,24,29,.8)';
  ctx.fillRect(x, y, w, 20);
  ctx.fillStyle = '#fff';
  ctx.textBaseline = 'middle';
  ctx.fillText(text, x + 6, y + 10);
  ctx.restore();
}
