// The "Remove" tab: open a photo, paint a mask, run an inpainting job, compare,
// keep editing on the result, download.
//
// History: one undo stack of actions, {type: 'stroke'}, {type: 'clear'} and
// {type: 'result'} (a finished run: undoing it brings back the photo and the
// strokes as they were before the run).

import { View } from './view.js';
import { Compare } from './compare.js';
import { Mask, TINT, feather, maskPNG, composite, canvasBlob } from './mask.js';
import { loadPhoto, decodeResult, withExt } from './photo.js';
import { runJob, admission } from './jobs.js';
import { MaskTools } from './masktools.js';
import { Batch } from './batch.js';
import { errorText, foundModels } from './api.js';
import {
  $, prefs, fillModelSelect, showMessage, showJobState, setJobDone, setJobFailed, setBusyUI,
  downloadImage, wireOpen, viewKey, foundHint,
} from './ui.js';

const HD_STRATEGIES = ['auto', 'original', 'resize', 'crop'];
const MAX_RUNS = 8; // runs that stay undoable

export class Editor {
  constructor() {
    this.el = {
      open: $('ed-open'), open2: $('ed-open2'), file: $('ed-file'),
      brush: $('ed-brush'), eraser: $('ed-eraser'), pan: $('ed-pan'),
      size: $('ed-size'), sizeOut: $('ed-size-out'), feather: $('ed-feather'), featherOut: $('ed-feather-out'),
      undo: $('ed-undo'), redo: $('ed-redo'), clear: $('ed-clear'),
      zoomIn: $('ed-zoom-in'), zoomOut: $('ed-zoom-out'), zoomFit: $('ed-zoom-fit'), zoom: $('ed-zoom'),
      model: $('ed-model'), hd: $('ed-hd'), run: $('ed-run'), cancel: $('ed-cancel'),
      job: $('ed-job'), progress: $('ed-progress'), status: $('ed-status'), error: $('ed-error'),
      download: $('ed-download'), stage: $('ed-stage'), canvas: $('ed-canvas'), drop: $('ed-drop'),
      badge: $('ed-badge'),
    };
    this.photo = null;      // as opened: {blob, name, type, bitmap, width, height}
    this.current = null;    // what is shown and edited: {bitmap, blob|null, width, height, original}
    this.mask = new Mask();
    this.undoStack = [];
    this.redoStack = [];
    this.tool = 'brush';
    this.job = null;        // {controller, info}
    this.models = [];

    this.view = new View(this.el.canvas, {
      drawScene: (ctx) => this.drawScene(ctx),
      drawOverlay: (ctx) => this.drawOverlay(ctx),
      onZoom: (z) => { this.el.zoom.value = `${Math.round(z * 100)}%`; },
    });
    this.compare = new Compare({
      bar: $('ed-compare'), toggle: $('ed-compare-toggle'), range: $('ed-compare-pos'), hold: $('ed-hold'),
    }, this.view);
    this.view.handler = this.toolHandler();
    this.lastRun = null;    // the last run's mask and fields, for Batch: {blob, width, height, fields}
    this.maskTools = new MaskTools(this);
    this.batch = new Batch(this);
    this.wire();
    this.setSize(prefs.get('brush', 15));
    this.setFeather(prefs.get('feather', 0));
    const hd = prefs.get('hd', 'auto');
    this.el.hd.value = HD_STRATEGIES.includes(hd) ? hd : 'auto';
    if (window.matchMedia('(max-width: 760px)').matches) $('ed-settings').open = false;
    this.update();
  }

  wire() {
    const e = this.el;
    wireOpen(e, (f, name) => this.open(f, name));
    e.brush.addEventListener('click', () => this.setTool('brush'));
    e.eraser.addEventListener('click', () => this.setTool('eraser'));
    e.pan.addEventListener('click', () => this.setTool(this.tool === 'pan' ? 'brush' : 'pan'));
    e.size.addEventListener('input', () => this.setSize(Number(e.size.value)));
    e.feather.addEventListener('input', () => this.setFeather(Number(e.feather.value)));
    e.undo.addEventListener('click', () => this.undo());
    e.redo.addEventListener('click', () => this.redo());
    e.clear.addEventListener('click', () => this.clear());
    e.zoomIn.addEventListener('click', () => this.view.zoomBy(1.25));
    e.zoomOut.addEventListener('click', () => this.view.zoomBy(0.8));
    e.zoomFit.addEventListener('click', () => this.view.fit());
    e.hd.addEventListener('change', () => prefs.set('hd', e.hd.value));
    e.model.addEventListener('change', () => { prefs.set('model', e.model.value); this.update(); });
    e.run.addEventListener('click', () => this.run());
    e.cancel.addEventListener('click', () => this.cancel());
    e.download.addEventListener('click', () => this.download());
    admission.addEventListener('change', () => this.showJob());
  }

  // ---------------------------------------------------------------- models
  setModels(models) {
    this.models = models.filter((m) => m.task === 'inpaint');
    fillModelSelect(this.el.model, this.models, prefs.get('model', ''),
      'No inpainting model is available on this server.');
    const hint = this.models.some((m) => m.name === 'lama') ? ''
      : `LaMa (learned fills) is not loaded. ${foundHint(foundModels(), 'lama', 'LaMa')}`;
    this.el.model.title = hint; // a tooltip: the settings column has no room for a paragraph
    this.update();
  }

  // ------------------------------------------------------------------ photo
  async open(blob, name) {
    if (this.job) {
      this.showError('Wait for the running job to finish (or cancel it) before opening another photo.');
      return;
    }
    this.showError('');
    let photo;
    try {
      photo = await loadPhoto(blob, name);
    } catch (err) {
      this.showError(errorText(err));
      return;
    }
    this.photo = photo;
    this.current = { bitmap: photo.bitmap, blob: photo.blob, width: photo.width, height: photo.height, original: true };
    this.mask.reset(photo.width, photo.height);
    this.undoStack = [];
    this.redoStack = [];
    this.compare.setBefore(null);
    this.el.drop.hidden = true;
    this.el.badge.hidden = false;
    this.el.badge.textContent = `${photo.name} · ${photo.width}×${photo.height}`;
    this.el.canvas.setAttribute('aria-label',
      `Photo ${photo.name}, ${photo.width} by ${photo.height} pixels. Paint over what should be removed.`);
    this.view.setImageSize(photo.width, photo.height);
    this.el.job.hidden = true;
    this.update();
    this.el.canvas.focus({ preventScroll: true });
  }

  // ------------------------------------------------------------------ tools
  setTool(tool) {
    this.tool = tool;
    this.el.brush.setAttribute('aria-pressed', String(tool === 'brush'));
    this.el.eraser.setAttribute('aria-pressed', String(tool === 'eraser'));
    this.el.pan.setAttribute('aria-pressed', String(tool === 'pan'));
    this.view.panMode = tool === 'pan';
    this.el.canvas.dataset.tool = tool;
    this.view.request();
  }

  setSize(px) {
    px = Math.round(Math.min(Number(this.el.size.max), Math.max(Number(this.el.size.min), px || 15)));
    this.size = px;
    this.el.size.value = String(px);
    this.el.sizeOut.value = `${px} px`;
    prefs.set('brush', px);
    this.view.request();
  }

  // [ and ]: about 15 % per press, at least 1 px.
  stepSize(dir) {
    const d = Math.max(1, Math.round(this.size * 0.15));
    this.setSize(this.size + dir * d);
  }

  setFeather(px) {
    px = Math.round(Math.min(Number(this.el.feather.max), Math.max(0, px || 0)));
    this.featherPx = px;
    this.el.feather.value = String(px);
    this.el.featherOut.value = `${px} px`;
    prefs.set('feather', px);
  }

  toolHandler() {
    let mode = null;
    return {
      down: (ip, ev, p) => {
        if (!this.current) return false;
        if (this.compare.hit(p)) { mode = 'divider'; return true; }
        if (this.job) return false;
        if (this.tool === 'pan') return false;
        this.showError('');
        mode = 'paint';
        this.mask.begin(this.tool, this.size, ip);
        return true;
      },
      move: (ip) => {
        if (mode === 'divider') this.compare.dragTo(ip.x);
        else if (mode === 'paint') this.mask.extend(ip);
      },
      up: () => {
        if (mode === 'paint') {
          const s = this.mask.end();
          if (s) this.push({ type: 'stroke', stroke: s });
        }
        mode = null;
      },
      cancel: () => {
        if (mode === 'paint') this.mask.abort();
        mode = null;
      },
      hover: (ip, p) => {
        this.el.canvas.style.cursor = this.compare.hit(p) ? 'ew-resize' : '';
      },
    };
  }

  // ---------------------------------------------------------------- history
  push(action) {
    this.undoStack.push(action);
    this.redoStack = [];
    // Each run keeps two full-size images; keep the last MAX_RUNS runs undoable.
    let runs = this.undoStack.filter((a) => a.type === 'result').length;
    while (runs > MAX_RUNS) {
      this.undoStack.splice(0, this.undoStack.findIndex((a) => a.type === 'result') + 1);
      runs--;
    }
    this.update();
  }

  undo() {
    this.replay(this.undoStack, this.redoStack, (a) => {
      if (a.type === 'stroke') {
        this.mask.strokes.pop();
      } else if (a.type === 'clear') {
        this.mask.strokes = a.strokes.slice();
      } else if (a.type === 'result') {
        this.setCurrent(a.before);
        this.mask.strokes = a.strokes.slice();
      }
    });
  }

  redo() {
    this.replay(this.redoStack, this.undoStack, (a) => {
      if (a.type === 'stroke') {
        this.mask.strokes.push(a.stroke);
      } else if (a.type === 'clear') {
        this.mask.strokes = [];
      } else if (a.type === 'result') {
        this.setCurrent(a.after);
        this.mask.strokes = [];
      }
    });
  }

  // Undo and redo: takes the last action off `from`, apply(action) undoes or
  // redoes it, and it goes onto `to`.
  replay(from, to, apply) {
    if (this.job || this.mask.current) return;
    const a = from.pop();
    if (!a) return;
    apply(a);
    to.push(a);
    this.mask.render();
    this.update();
  }

  clear() {
    if (this.job || !this.mask.strokes.length) return;
    this.push({ type: 'clear', strokes: this.mask.strokes.slice() });
    this.mask.strokes = [];
    this.mask.render();
    this.update();
  }

  setCurrent(img) {
    this.current = img;
    this.compare.setBefore(img.original ? null : this.photo.bitmap);
    this.view.request();
  }

  // ---------------------------------------------------------------- drawing
  drawScene(ctx) {
    if (!this.current) return;
    const { width: w, height: h } = this.current;
    this.compare.drawScene(ctx, this.current.bitmap, w, h);
    if (!this.compare.holding) {
      ctx.globalAlpha = this.job ? 0.35 : 0.55;
      ctx.drawImage(this.mask.canvas, 0, 0);
      ctx.globalAlpha = 1;
    }
  }

  drawOverlay(ctx) {
    if (!this.current) return;
    this.compare.drawOverlay(ctx);
    const v = this.view;
    if (v.hover && this.tool !== 'pan' && !this.job && !this.compare.hit(v.hover) && !v.panMode) {
      const r = Math.max(1, (this.size * v.zoom) / 2);
      ctx.save();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = 'rgba(0,0,0,.7)';
      ctx.beginPath();
      ctx.arc(v.hover.x, v.hover.y, r + 1, 0, Math.PI * 2);
      ctx.stroke();
      ctx.strokeStyle = this.tool === 'eraser' ? '#fff' : TINT;
      ctx.beginPath();
      ctx.arc(v.hover.x, v.hover.y, r, 0, Math.PI * 2);
      ctx.stroke();
      ctx.restore();
    }
  }

  // --------------------------------------------------------------- running
  canRun() {
    return !!(this.current && !this.job && this.el.model.value && this.mask.strokes.length);
  }

  async run() {
    if (this.job) return;
    if (!this.current) { this.showError('Open a photo first.'); return; }
    if (!this.el.model.value) { this.showError('No inpainting model is available on this server.'); return; }
    const bin = this.mask.binary();
    if (!bin.count) { this.showError('Paint over what should be removed first.'); return; }
    this.showError('');
    const before = this.current;
    const strokes = this.mask.strokes.slice();
    const controller = new AbortController();
    this.job = { controller, info: { state: 'submitting', value: 0, max: 0 } };
    this.update();
    this.showJob();
    try {
      const soft = this.featherPx > 0 ? feather(bin, this.featherPx) : null;
      const maskBlob = await maskPNG(soft ? soft.send : bin.data, bin.w, bin.h);
      const imageBlob = before.blob || await canvasBlob(toCanvas(before), 'image/png');
      const imageName = withExt(this.photo.name || 'photo', imageBlob.type);
      const fields = {
        task: 'inpaint',
        model: this.el.model.value,
        hd_strategy: this.el.hd.value,
      };
      const { blob } = await runJob(fields, { image: [imageBlob, imageName], mask: [maskBlob, 'mask.png'] }, {
        signal: controller.signal,
        onUpdate: (info) => { if (this.job) { this.job.info = info; this.showJob(); } },
      });
      const { blob: typed, bitmap } = await decodeResult(blob);
      if (bitmap.width !== before.width || bitmap.height !== before.height) {
        throw new Error(`The server returned a ${bitmap.width}×${bitmap.height} image for a ${before.width}×${before.height} photo.`);
      }
      let after;
      if (soft) {
        const c = composite(before.bitmap, bitmap, soft.alpha, before.width, before.height);
        after = { bitmap: c, blob: null, width: before.width, height: before.height, original: false };
      } else {
        after = { bitmap, blob: typed, width: before.width, height: before.height, original: false };
      }
      this.job = null;
      this.lastRun = { blob: maskBlob, width: bin.w, height: bin.h, fields };
      this.mask.strokes = [];
      this.mask.render();
      this.push({ type: 'result', before, after, strokes });
      this.setCurrent(after);
      setJobDone(this.el, 'Done. Paint again to remove more, or download.');
    } catch (err) {
      this.job = null;
      setJobFailed(this.el, err);
    }
    this.update();
    this.view.request();
  }

  cancel() {
    if (this.job) this.job.controller.abort();
  }

  showJob() {
    showJobState(this.el, this.job);
  }

  async download() {
    if (!this.current) return;
    await downloadImage(this.current, this.photo, (msg) => this.showError(msg));
  }

  showError(msg) {
    showMessage(this.el.error, msg);
  }

  update() {
    const e = this.el;
    const busy = !!this.job;
    e.run.disabled = !this.canRun();
    setBusyUI(e, busy, !!this.current);
    e.undo.disabled = busy || !this.undoStack.length;
    e.redo.disabled = busy || !this.redoStack.length;
    e.clear.disabled = busy || !this.mask.strokes.length;
    e.open.disabled = busy;
    this.maskTools.update();
    this.batch.update();
    this.view.request();
  }

  // ---------------------------------------------------------------- keys
  // Returns true when the key was handled. `typing`: focus is in a text field.
  shortcut(ev) {
    const k = ev.key;
    const ctrl = ev.ctrlKey || ev.metaKey;
    if (ctrl && (k === 'z' || k === 'Z')) { ev.shiftKey ? this.redo() : this.undo(); return true; }
    if (ctrl && (k === 'y' || k === 'Y')) { this.redo(); return true; }
    if (ctrl && (k === 'o' || k === 'O')) { this.el.file.click(); return true; }
    if (ctrl && (k === 's' || k === 'S')) { this.download(); return true; }
    if (ctrl || ev.altKey) return false;
    if (this.maskTools.shortcut(ev)) return true;
    switch (k) {
      case 'b': case 'B': this.setTool('brush'); return true;
      case 'e': case 'E': this.setTool('eraser'); return true;
      case 'h': case 'H': this.setTool(this.tool === 'pan' ? 'brush' : 'pan'); return true;
      case '[': this.stepSize(-1); return true;
      case ']': this.stepSize(1); return true;
      case 'Delete': case 'Backspace': this.clear(); return true;
      case 'Enter': if (this.canRun()) this.run(); return true;
      case 'Escape': if (this.job) { this.cancel(); return true; } return false;
      default: return viewKey(k, this.view, this.compare);
    }
  }
}

function toCanvas(img) {
  const c = document.createElement('canvas');
  c.width = img.width;
  c.height = img.height;
  c.getContext('2d').drawImage(img.bitmap, 0, 0);
  return c;
}
