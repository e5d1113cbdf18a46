// Small DOM helpers shared by the tabs.

import { imageFromTransfer } from './photo.js';

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

// Fills a <select> with models: keeps `wanted` when offered, else the model
// flagged default, else `fallback`, else the first. An empty list leaves one
// disabled option that says `emptyText`.
export function fillModelSelect(select, models, wanted, fallback, emptyText) {
  select.replaceChildren();
  if (!models.length) {
    const o = new Option(emptyText, '');
    select.add(o);
    select.disabled = true;
    return;
  }
  select.disabled = false;
  for (const m of models) {
    const o = new Option(m.label || m.display_name || m.name, m.name);
    if (m.description) o.title = m.description;
    select.add(o);
  }
  const names = models.map((m) => m.name);
  const dflt = models.find((m) => m.default)?.name;
  select.value = names.includes(wanted) ? wanted : dflt || (names.includes(fallback) ? fallback : names[0]);
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
