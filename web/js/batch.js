// "Apply this mask to more photos…": after a run in the Remove tab, the mask
// that run used is sent with each of several photos as its own job (the
// server's queue orders them), with progress for each, and the results come
// back in each photo's own format, one by one or as one zip file.
//
// Photos of another size than the mask are skipped with the reason, unless
// "Scale the mask" is ticked (then the server scales it: mask_resize=1).

import { runJob, describe, admission } from './jobs.js';
import { errorText } from './api.js';
import { loadPhoto, sniffType, saveBlob, extOf } from './photo.js';
import { makeZip } from './zip.js';
import { $, prefs } from './ui.js';

const PARALLEL = 3; // jobs submitted at once; the rest wait here, not in the server's queue
function resultName(name, type) {
  const ext = extOf(type);
  if (!ext) return name;
  const base = name.replace(/\.[^./\\]+$/, '');
  const cur = (/\.([^./\\]+)$/.exec(name) || [])[1] || '';
  const same = cur.toLowerCase() === ext || (ext === 'jpg' && cur.toLowerCase() === 'jpeg');
  return same ? name : `${base}.${ext}`;
}

export class Batch {
  constructor(editor) {
    this.ed = editor;
    this.el = {
      open: $('ed-batch'), files: $('ed-batch-files'), dialog: $('batch'), summary: $('batch-summary'),
      resize: $('batch-resize'), rows: $('batch-rows'), start: $('batch-start'), zip: $('batch-zip'),
      cancel: $('batch-cancel'), status: $('batch-status'),
    };
    this.items = [];
    this.running = false;
    this.controller = null;
    const e = this.el;
    e.resize.checked = prefs.get('batchResize', false);
    e.open.addEventListener('click', () => this.pick());
    e.files.addEventListener('change', () => {
      const list = [...e.files.files];
      e.files.value = '';
      if (list.length) this.prepare(list);
    });
    e.resize.addEventListener('change', () => { prefs.set('batchResize', e.resize.checked); this.refresh(); });
    e.start.addEventListener('click', () => this.start());
    e.cancel.addEventListener('click', () => this.stop());
    e.zip.addEventListener('click', () => this.zip());
    admission.addEventListener('change', () => this.refresh());
  }

  // While a batch runs the button shows it again; otherwise it picks photos.
  pick() {
    if (this.running) { this.el.dialog.showModal(); return; }
    if (!this.ed.lastRun) return;
    this.el.files.click();
  }

  // One row per file; sizes are read first so that the list says what will happen.
  async prepare(files) {
    const run = this.ed.lastRun;
    this.mask = run;
    this.items = files.map((file) => ({
      file, name: file.name, w: 0, h: 0, state: 'checking', error: '', info: null, result: null, outName: '',
    }));
    this.el.rows.replaceChildren(...this.items.map((it) => this.row(it)));
    this.el.summary.textContent = `The mask of the last run (${run.width}×${run.height}, model ${run.fields.model}) on ${files.length} ${files.length === 1 ? 'photo' : 'photos'}.`;
    this.el.dialog.showModal();
    this.refresh();
    for (const it of this.items) {
      try {
        const p = await loadPhoto(it.file, it.name);
        it.w = p.width;
        it.h = p.height;
        it.type = p.type;
        p.bitmap.close?.();
        it.state = 'ready';
      } catch (err) {
        it.state = 'invalid';
        it.error = errorText(err);
      }
      this.show(it);
    }
    this.refresh();
  }

  row(it) {
    const tr = document.createElement('tr');
    const name = document.createElement('th');
    name.scope = 'row';
    name.textContent = it.name;
    const size = document.createElement('td');
    const prog = document.createElement('td');
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.setAttribute('aria-label', `Progress of ${it.name}`);
    const text = document.createElement('span');
    text.className = 'batch-state';
    prog.append(bar, text);
    const dl = document.createElement('td');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.textContent = 'Download';
    btn.setAttribute('aria-label', `Download ${it.name}`);
    btn.disabled = true;
    btn.addEventListener('click', () => { if (it.result) saveBlob(it.result, it.outName); });
    dl.append(btn);
    tr.append(name, size, prog, dl);
    it.ui = { tr, size, bar, text, btn };
    this.show(it);
    return tr;
  }

  otherSize(it) {
    return it.state !== 'invalid' && it.w > 0 && (it.w !== this.mask.width || it.h !== this.mask.height);
  }

  // Whether the item will be (or was) sent.
  sendable(it) {
    return it.state === 'ready' && (!this.otherSize(it) || this.el.resize.checked);
  }

  show(it) {
    const u = it.ui;
    if (!u) return;
    u.size.textContent = it.w ? `${it.w}×${it.h}` : '';
    let text = '';
    let value = null;
    switch (it.state) {
      case 'checking': text = 'Reading…'; break;
      case 'invalid': text = `Skipped: ${it.error}`; break;
      case 'ready':
        if (this.otherSize(it)) {
          text = this.el.resize.checked
            ? `Another size: the ${this.mask.width}×${this.mask.height} mask will be scaled`
            : `Skipped: the mask is ${this.mask.width}×${this.mask.height} (tick "Scale the mask" to use it)`;
        } else {
          text = 'Ready';
        }
        break;
      case 'waiting': text = 'Waiting to be sent'; break;
      case 'job':
        text = describe(it.info, admission.paused);
        value = it.info.state === 'running' && it.info.max > 0 ? it.info.value / it.info.max : null;
        break;
      case 'done': text = 'Done'; value = 1; break;
      case 'failed': text = `Failed: ${it.error}`; value = 0; break;
      case 'cancelled': text = 'Cancelled'; value = 0; break;
      default: text = it.state;
    }
    if (value === null && it.state !== 'job') value = 0;
    if (value === null) u.bar.removeAttribute('value'); else u.bar.value = value;
    u.text.textContent = text;
    u.tr.dataset.state = it.state;
    u.btn.disabled = !it.result;
  }

  refresh() {
    const e = this.el;
    const items = this.items;
    for (const it of items) this.show(it);
    const n = items.filter((it) => this.sendable(it)).length;
    const done = items.filter((it) => it.result).length;
    e.start.disabled = this.running || !n || items.some((it) => it.state === 'checking');
    e.start.textContent = n ? `Start ${n} ${n === 1 ? 'job' : 'jobs'}` : 'Start';
    e.cancel.hidden = !this.running;
    e.zip.disabled = this.running || !done;
    const failed = items.filter((it) => it.state === 'failed').length;
    e.status.textContent = this.running
      ? `${done} of ${items.filter((it) => ['waiting', 'job', 'done', 'failed', 'cancelled'].includes(it.state)).length} done…`
      : done || failed ? `${done} done${failed ? `, ${failed} failed` : ''}.` : '';
    e.open.textContent = this.running ? 'Show the running batch…' : 'Apply this mask to more photos…';
  }

  async start() {
    if (this.running) return;
    const todo = this.items.filter((it) => this.sendable(it));
    if (!todo.length) return;
    this.running = true;
    this.controller = new AbortController();
    const { signal } = this.controller;
    for (const it of todo) it.state = 'waiting';
    this.refresh();
    this.ed.update();
    const next = () => todo.find((it) => it.state === 'waiting');
    const worker = async () => {
      for (let it = next(); it && !signal.aborted; it = next()) {
        it.state = 'job';
        it.info = { state: 'submitting', value: 0, max: 0 };
        this.show(it);
        const fields = { ...this.mask.fields };
        if (this.otherSize(it)) fields.mask_resize = '1';
        try {
          const { blob } = await runJob(fields, { image: [it.file, it.name], mask: [this.mask.blob, 'mask.png'] }, {
            signal,
            onUpdate: (info) => { it.info = info; this.show(it); },
          });
          const type = (await sniffType(blob)) || blob.type;
          it.result = type && blob.type !== type ? new Blob([blob], { type }) : blob;
          it.outName = resultName(it.name, type);
          it.state = 'done';
        } catch (err) {
          it.state = err && err.code === 'aborted' ? 'cancelled' : 'failed';
          it.error = errorText(err);
        }
        this.refresh();
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, todo.length) }, worker));
    for (const it of todo) if (it.state === 'waiting') it.state = 'cancelled';
    this.running = false;
    this.controller = null;
    this.refresh();
    this.ed.update();
  }

  stop() {
    if (this.controller) this.controller.abort();
  }

  async zip() {
    const done = this.items.filter((it) => it.result);
    if (!done.length) return;
    const used = new Set();
    const entries = [];
    for (const it of done) {
      const plain = it.outName.replace(/^.*[\\/]/, '');
      const dot = plain.lastIndexOf('.');
      let name = plain;
      for (let k = 2; used.has(name.toLowerCase()); k++) {
        name = dot > 0 ? `${plain.slice(0, dot)} (${k})${plain.slice(dot)}` : `${plain} (${k})`;
      }
      used.add(name.toLowerCase());
      entries.push({ name, data: new Uint8Array(await it.result.arrayBuffer()) });
    }
    try {
      saveBlob(makeZip(entries), 'pixmend-results.zip');
    } catch (err) {
      this.el.status.textContent = errorText(err);
    }
  }

  update() {
    this.el.open.disabled = !this.running && (!this.ed.lastRun || !!this.ed.job);
  }
}
