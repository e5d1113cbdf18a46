// Entry point: tabs, the connection indicator, models, global keyboard
// shortcuts, paste, and the service worker.

import { listModels, errorText } from './api.js';
import { events } from './events.js';
import { refreshAdmission } from './jobs.js';
import { Editor } from './editor.js';
import { Colorizer } from './colorize.js';
import { Dashboard } from './dashboard.js';
import { imageFromTransfer } from './photo.js';
import { $ } from './ui.js';
import { wireKeyButton } from './auth.js';

const editor = new Editor();
const colorizer = new Colorizer();
const dashboard = new Dashboard();
const TABS = ['editor', 'colorize', 'dashboard'];
let active = 'editor';

// ------------------------------------------------------------------ tabs
function showTab(name, focus = false) {
  if (!TABS.includes(name)) name = 'editor';
  active = name;
  for (const t of TABS) {
    const tab = $(`tab-${t}`);
    const on = t === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
  }
  if (focus) $(`tab-${name}`).focus();
  dashboard.setVisible(name === 'dashboard');
  if (name === 'editor') editor.view.resize();
  if (name === 'colorize') colorizer.view.resize();
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
}

for (const t of TABS) $(`tab-${t}`).addEventListener('click', () => showTab(t));
document.querySelector('[role=tablist]').addEventListener('keydown', (e) => {
  const i = TABS.indexOf(active);
  let j = null;
  if (e.key === 'ArrowRight') j = (i + 1) % TABS.length;
  else if (e.key === 'ArrowLeft') j = (i + TABS.length - 1) % TABS.length;
  else if (e.key === 'Home') j = 0;
  else if (e.key === 'End') j = TABS.length - 1;
  if (j !== null) { e.preventDefault(); showTab(TABS[j], true); }
});
window.addEventListener('hashchange', () => showTab(location.hash.slice(1)));
showTab(location.hash.slice(1) || 'editor');

// ------------------------------------------------------------ connection
const conn = $('conn');
let httpOk = null; // last poll of /api/v1/stats: true, false, or null (not yet)
function showConn() {
  let state = events.state;
  if (state !== 'live' && httpOk) state = 'polling';
  if (state === 'connecting' && httpOk === false) state = 'offline';
  conn.dataset.state = state;
  conn.textContent = {
    live: 'Live', polling: 'Connected (no live events)', connecting: 'Connecting…', offline: 'Server unreachable',
  }[state];
  conn.title = {
    live: 'Connected: progress and status arrive live over a WebSocket',
    polling: 'The WebSocket is not available; progress is read by polling',
    connecting: '',
    offline: 'The pixmend server cannot be reached; the page keeps trying by itself',
  }[state];
}
events.addEventListener('connection', (e) => {
  showConn();
  if (e.detail.state === 'live') { loadModels(); refreshAdmission(); }
});
dashboard.onPoll = (ok) => {
  const was = httpOk;
  httpOk = ok;
  if (was !== ok) showConn();
  if (ok && !modelsLoaded) loadModels();
};
showConn();
events.start();

// ---------------------------------------------------------------- models
let modelsLoaded = false;
const MODELS_ERROR = 'Cannot list the models';
async function loadModels() {
  try {
    const models = await listModels();
    modelsLoaded = true;
    if (editor.el.error.textContent.startsWith(MODELS_ERROR)) editor.showError('');
    editor.setModels(models);
    colorizer.setModels(models);
  } catch (err) {
    if (!modelsLoaded) {
      editor.showError(`${MODELS_ERROR}: ${errorText(err)}`);
      setTimeout(loadModels, 3000);
    }
  }
}
loadModels();
refreshAdmission();

// Tool forms never submit (Enter runs the job through the keyboard shortcuts).
for (const f of document.querySelectorAll('form.tools')) f.addEventListener('submit', (e) => e.preventDefault());
wireKeyButton();

// -------------------------------------------------------------- keyboard
const help = $('help');
$('help-open').addEventListener('click', () => help.showModal());
for (const b of document.querySelectorAll('[data-open-help]')) b.addEventListener('click', () => help.showModal());

function typingIn(el) {
  if (!el) return false;
  if (el.isContentEditable) return true;
  if (el.tagName === 'TEXTAREA' || el.tagName === 'SELECT') return true;
  return el.tagName === 'INPUT' && !['range', 'radio', 'checkbox', 'button', 'file'].includes(el.type);
}
// Keys a focused control handles itself (a button's Enter/Space, a slider's arrows).
function ownedByControl(el, e) {
  if (!el || el === document.body) return false;
  const tag = el.tagName;
  if ((tag === 'BUTTON' || tag === 'A' || tag === 'SUMMARY') && (e.key === 'Enter' || e.key === ' ')) return true;
  if (tag === 'INPUT' && (e.key === 'Enter' || e.key === ' ' || e.key.startsWith('Arrow'))) return true;
  if (el.getAttribute('role') === 'tab' && (e.key === 'Enter' || e.key === ' ')) return true;
  return false;
}

function currentCompare() {
  if (active === 'editor') return editor.compare;
  if (active === 'colorize') return colorizer.compare;
  return null;
}

document.addEventListener('keydown', (e) => {
  if (help.open || document.querySelector('dialog[open]')) return; // a dialog has the keys
  const el = document.activeElement;
  if (e.altKey && !e.ctrlKey && ['1', '2', '3'].includes(e.key)) {
    e.preventDefault();
    showTab(TABS[Number(e.key) - 1], true);
    return;
  }
  if (typingIn(el) || ownedByControl(el, e)) return;
  if (e.key === '?' ) { e.preventDefault(); help.showModal(); return; }
  if (e.key === ' ') {
    const c = currentCompare();
    if (c) { e.preventDefault(); if (!e.repeat) c.setHolding(true); }
    return;
  }
  const target = active === 'editor' ? editor : active === 'colorize' ? colorizer : null;
  if (target && target.shortcut(e)) e.preventDefault();
});
document.addEventListener('keyup', (e) => {
  if (e.key === ' ') { const c = currentCompare(); if (c && c.holding) c.setHolding(false); }
});
window.addEventListener('blur', () => { const c = currentCompare(); if (c) c.setHolding(false); });

// ----------------------------------------------------------------- paste
document.addEventListener('paste', (e) => {
  if (typingIn(document.activeElement)) return;
  const f = imageFromTransfer(e.clipboardData);
  if (!f) return;
  e.preventDefault();
  if (active === 'colorize') colorizer.open(f, f.name && f.name !== 'image.png' ? f.name : '');
  else {
    if (active !== 'editor') showTab('editor');
    editor.open(f, f.name && f.name !== 'image.png' ? f.name : '');
  }
});

// ------------------------------------------------------- service worker
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => { /* no offline shell */ });
}

// For tests and the curious: the live objects.
window.pixmend = { editor, colorizer, dashboard, events, showTab };
