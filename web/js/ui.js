// Small DOM helpers shared by the tabs.

import { imageFromTransfer, bytesFor, saveBlob } from './photo.js';
import { describe, admission } from './jobs.js';
import { errorText } from './api.js';

export const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`pixmend UI: element #${id} is missing`);
  return el;
};

// Preferences kept in localStorage (silently absent when storage is blocked).
export const prefs = {
  get(key, dflt) {
    try {
      const v = localStorage.getItem(`pixmend.${key}`);
      if (v === null) return dflt;
      const parsed = JSON.parse(v);
      return typeof parsed === typeof dflt ? parsed : dflt;
    } catch { return dflt; }
  },
  set(key, value) {
    try { localStorage.setItem(`pixmend.${key}`, JSON.stringify(value)); } catch { /* ignore */ }
  },
};

// Fills a <select> with models ({name, default}, from GET /api/v1/models):
// keeps `wanted` when offered, else the model the server marks default, else
// the first. An empty list leaves one disabled option that says `emptyText`.
export function fillModelSelect(select, models, wanted, emptyText) {
  select.replaceChildren();
  if (!models.length) {
    const o = new Option(emptyText, '');
    select.add(o);
    select.disabled = true;
    return;
  }
  select.disabled = false;
  for (const m of models) select.add(new Option(m.name, m.name));
  const names = models.map((m) => m.name);
  const dflt = models.find((m) => m.default)?.name;
  select.value = names.includes(wanted) ? wanted : dflt || names[0];
}

// Says where a model's weights could come from: the files the server found
// but did not load (and how to load them), else where it looked and how to
// add one. `found` is api.foundModels(); '' when the server did not look.
export function foundHint(found, model, label) {
  if (!found || !Array.isArray(found.models)) return '';
  const idle = found.models.filter((m) => m.model === model && !m.loaded);
  if (idle.length) {
    const list = idle.map((m) => `${m.path} (${m.variant}, ${m.format})`).join('; ');
    return `The server found ${list}; an administrator loads it by restarting with --models auto.`;
  }
  const dirs = (found.searched || []).map((d) => d.dir).join(', ');
  return `No ${label} weights are in the server's caches (${dirs}); an administrator adds one with ` +
    `--model ${model}=FILE, or puts it there and restarts with --models auto.`;
}

// Shows a job's progress: el.job (box), el.progress (<progress>), el.status (text).
export function setJobUI(el, info, paused, text) {
  el.job.hidden = false;
  const determinate = info.state === 'running' && info.max > 0;
  if (determinate) {
    el.progress.max = info.max;
    el.progress.value = info.value;
  } else {
    el.progress.removeAttribute('value');
  }
  el.progress.setAttribute('aria-valuetext', text);
  el.status.textContent = text;
  el.status.classList.toggle('waiting', info.state === 'queued' && paused);
}

// Shows `msg` in the element `box`; an empty message hides it.
export function showMessage(box, msg) {
  box.textContent = msg;
  box.hidden = !msg;
}

// Shows a running job ({info}) in el.job/el.progress/el.status, with the
// admission state; nothing when there is no job.
export function showJobState(el, job) {
  if (job) setJobUI(el, job.info, admission.paused, describe(job.info, admission.paused));
}

// A job has finished: a full bar and `text`.
export function setJobDone(el, text) {
  el.status.textContent = text;
  el.progress.max = 1;
  el.progress.value = 1;
  el.status.classList.remove('waiting');
}

// A job has failed or was cancelled: hides el.job and shows why in el.error
// (nothing when the user cancelled it).
export function setJobFailed(el, err) {
  el.job.hidden = true;
  showMessage(el.error, err && err.code === 'aborted' ? '' : errorText(err));
}

// Run/Cancel swap while a job runs; Download needs a result and no job.
export function setBusyUI(el, busy, hasResult) {
  el.run.hidden = busy;
  el.cancel.hidden = !busy;
  el.download.disabled = busy || !hasResult;
}

// Downloads `img` ({bitmap, blob, width, height}) under the name and in the
// format of `photo`; a note (another format was written) or an error goes to
// showError(msg).
export async function downloadImage(img, photo, showError) {
  try {
    const { blob, name, note } = await bytesFor(img, photo.name, photo.type, photo.quality);
    saveBlob(blob, name);
    if (note) showError(note);
  } catch (err) {
    showError(errorText(err));
  }
}

// The Open buttons (el.open, el.open2), the file input (el.file) and drops on
// el.stage: onFile(file, name).
export function wireOpen(el, onFile) {
  const pick = () => el.file.click();
  el.open.addEventListener('click', pick);
  el.open2.addEventListener('click', pick);
  el.file.addEventListener('change', () => {
    const f = el.file.files[0];
    el.file.value = '';
    if (f) onFile(f, f.name);
  });
  wireDrop(el.stage, (f) => onFile(f, f.name));
}

// Keys the image tabs share: c (compare), + - 0 1 (zoom). True when handled.
export function viewKey(k, view, compare) {
  switch (k) {
    case 'c': case 'C': compare.toggle(); return true;
    case '+': case '=': view.zoomBy(1.25); return true;
    case '-': case '_': view.zoomBy(0.8); return true;
    case '0': view.fit(); return true;
    case '1': view.zoomTo(1); return true;
    default: return false;
  }
}

// Drag-and-drop of an image file onto `zone`; onFile(file).
export function wireDrop(zone, onFile) {
  let depth = 0;
  zone.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; zone.classList.add('dragover'); });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; });
  zone.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) zone.classList.remove('dragover'); });
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dragover');
    const f = imageFromTransfer(e.dataTransfer);
    if (f) onFile(f);
  });
}
