// The "Colorize" tab: open a black-and-white photo, pick the network's input
// size, run a colorize job, compare, download. Disabled (with the reason) when
// the server offers no colorize model.

import { View } from './view.js';
import { Compare } from './compare.js';
import { loadPhoto, decodeResult } from './photo.js';
import { runJob, admission } from './jobs.js';
import { errorText, foundModels, optionLimits } from './api.js';
import {
  $, prefs, fillModelSelect, showMessage, showJobState, setJobDone, setJobFailed, setBusyUI,
  downloadImage, wireOpen, viewKey, foundHint,
} from './ui.js';

const NO_MODEL_BASE = 'Colorizing needs a DDColor model, and this server has none configured.';
export const NO_MODEL_TEXT = `${NO_MODEL_BASE} ` +
  'An administrator can add one by starting the server with --model ddcolor=FILE (the DDColor weights).';

export class Colorizer {
  constructor() {
    this.el = {
      tab: $('tab-colorize'), unavailable: $('co-unavailable'), tools: $('co-tools'),
      open: $('co-open'), open2: $('co-open2'), file: $('co-file'), model: $('co-model'),
      custom: $('co-custom'), run: $('co-run'), cancel: $('co-cancel'),
      job: $('co-job'), progress: $('co-progress'), status: $('co-status'), error: $('co-error'),
      download: $('co-download'), stage: $('co-stage'), canvas: $('co-canvas'), drop: $('co-drop'),
    };
    this.radios = [...document.querySelectorAll('input[name="co-size"]')];
    this.available = false;
    this.photo = null;
    this.result = null;  // {bitmap, blob, width, height}
    this.job = null;
    this.view = new View(this.el.canvas, {
      drawScene: (ctx) => this.drawScene(ctx),
      drawOverlay: (ctx) => this.compare?.drawOverlay(ctx),
    });
    this.compare = new Compare({
      bar: $('co-compare'), toggle: $('co-compare-toggle'), range: $('co-compare-pos'), hold: $('co-hold'),
    }, this.view);
    let mode = null;
    this.view.handler = {
      down: (ip, ev, p) => { if (this.compare.hit(p)) { mode = 'divider'; return true; } return false; },
      move: (ip) => { if (mode === 'divider') this.compare.dragTo(ip.x); },
      up: () => { mode = null; },
      cancel: () => { mode = null; },
      hover: (ip, p) => { this.el.canvas.style.cursor = this.compare.hit(p) ? 'ew-resize' : 'default'; },
    };
    this.wire();
    const preset = prefs.get('coSize', 'portrait');
    for (const r of this.radios) r.checked = r.value === preset;
    if (!this.radios.some((r) => r.checked)) this.radios[0].checked = true;
    this.setModels([]);
  }

  // The input size's range, step, default and presets come from the server
  // (limits.input_size of GET /api/v1/models); nothing here copies them.
  applyLimits(lim) {
    if (!lim || this.limits === lim) return;
    this.limits = lim;
    const c = this.el.custom;
    c.min = String(lim.min);
    c.max = String(lim.max);
    c.step = String(lim.step);
    c.value = String(prefs.get('coCustom', lim.default));
    for (const span of this.el.tools.querySelectorAll('.co-preset')) {
      const v = lim.presets[span.dataset.preset];
      span.textContent = v === undefined ? '' : ` (${v})`;
      span.closest('label').hidden = v === undefined;
    }
  }

  wire() {
    const e = this.el;
    wireOpen(e, (f, name) => this.open(f, name));
    for (const r of this.radios) r.addEventListener('change', () => this.syncPreset());
    e.custom.addEventListener('change', () => { if (Number(e.custom.value)) prefs.set('coCustom', Number(e.custom.value)); });
    e.model.addEventListener('change', () => prefs.set('coModel', e.model.value));
    e.run.addEventListener('click', () => this.run());
    e.cancel.addEventListener('click', () => this.job?.controller.abort());
    e.download.addEventListener('click', () => this.download());
    admission.addEventListener('change', () => this.showJob());
  }

  syncPreset() {
    const v = this.radios.find((r) => r.checked).value;
    this.el.custom.disabled = v !== 'custom' || !this.available;
    prefs.set('coSize', v);
  }

  // The input_size to send: a preset's size, or the custom size on the server's step.
  inputSize() {
    const lim = this.limits;
    const v = this.radios.find((r) => r.checked).value;
    if (v !== 'custom') return lim.presets[v];
    const n = Math.round(Number(this.el.custom.value));
    if (!Number.isFinite(n) || n < lim.min || n > lim.max) {
      throw new Error(`The custom input size must be a whole number of pixels from ${lim.min} to ${lim.max}.`);
    }
    return lim.min + Math.round((n - lim.min) / lim.step) * lim.step;
  }

  // models: every model the server offers; only task "colorize" ones count.
  setModels(models) {
    const list = models.filter((m) => m.task === 'colorize');
    this.available = list.length > 0;
    this.applyLimits(optionLimits()?.input_size);
    fillModelSelect(this.el.model, list, prefs.get('coModel', ''), 'No colorize model configured');
    this.el.tab.setAttribute('aria-disabled', String(!this.available));
    this.el.tab.title = this.available ? '' : 'No colorize model is configured on this server';
    this.el.unavailable.hidden = this.available;
    const hint = foundHint(foundModels(), 'ddcolor', 'DDColor');
    this.el.unavailable.textContent = this.available ? '' : hint ? `${NO_MODEL_BASE} ${hint}` : NO_MODEL_TEXT;
    for (const el of this.el.tools.querySelectorAll('button, input, select')) {
      if (el.id !== 'co-cancel') el.disabled = !this.available;
    }
    this.el.open2.disabled = !this.available;
    $('co-drop-on').hidden = !this.available;
    $('co-drop-off').hidden = this.available;
    this.syncPreset();
    this.update();
  }

  async open(blob, name) {
    if (!this.available) { this.showError(NO_MODEL_TEXT); return; }
    if (this.job) { this.showError('Wait for the running job to finish (or cancel it) first.'); return; }
    this.showError('');
    try {
      this.photo = await loadPhoto(blob, name);
    } catch (err) {
      this.showError(errorText(err));
      return;
    }
    this.result = null;
    this.compare.setBefore(null);
    this.el.drop.hidden = true;
    this.el.job.hidden = true;
    this.el.canvas.setAttribute('aria-label', `Photo ${this.photo.name}, ${this.photo.width} by ${this.photo.height} pixels`);
    this.view.setImageSize(this.photo.width, this.photo.height);
    this.update();
  }

  drawScene(ctx) {
    if (!this.photo) return;
    const shown = this.result || this.photo;
    this.compare.drawScene(ctx, shown.bitmap, shown.width, shown.height);
  }

  async run() {
    if (this.job || !this.photo || !this.available) return;
    let size;
    try { size = this.inputSize(); } catch (err) { this.showError(err.message); return; }
    this.showError('');
    const controller = new AbortController();
    this.job = { controller, info: { state: 'submitting' } };
    this.update();
    this.showJob();
    try {
      const { blob } = await runJob({
        task: 'colorize', model: this.el.model.value, input_size: size,
      }, { image: [this.photo.blob, this.photo.name] }, {
        signal: controller.signal,
        onUpdate: (info) => { if (this.job) { this.job.info = info; this.showJob(); } },
      });
      const { blob: typed, bitmap } = await decodeResult(blob);
      this.result = { bitmap, blob: typed, width: bitmap.width, height: bitmap.height };
      this.job = null;
      this.compare.setBefore(this.photo.bitmap);
      setJobDone(this.el, 'Done.');
    } catch (err) {
      this.job = null;
      setJobFailed(this.el, err);
    }
    this.update();
  }

  showJob() {
    showJobState(this.el, this.job);
  }

  async download() {
    if (!this.result) return;
    await downloadImage(this.result, this.photo, (msg) => this.showError(msg));
  }

  showError(msg) {
    showMessage(this.el.error, msg);
  }

  update() {
    const e = this.el;
    const busy = !!this.job;
    e.run.disabled = !this.available || busy || !this.photo;
    setBusyUI(e, busy, !!this.result);
    e.open.disabled = busy || !this.available;
    this.view.request();
  }

  shortcut(ev) {
    const k = ev.key;
    const ctrl = ev.ctrlKey || ev.metaKey;
    if (ctrl && (k === 'o' || k === 'O')) { if (this.available) this.el.file.click(); return true; }
    if (ctrl && (k === 's' || k === 'S')) { this.download(); return true; }
    if (ctrl || ev.altKey) return false;
    switch (k) {
      case 'Enter': this.run(); return true;
      case 'Escape': if (this.job) { this.job.controller.abort(); return true; } return false;
      default: return viewKey(k, this.view, this.compare);
    }
  }
}
