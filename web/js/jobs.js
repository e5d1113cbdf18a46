// Running one job from submission to result: the 202 answer, then WebSocket
// events for it (queued/started/progress/done/failed/cancelled), with polling
// of GET /api/v1/jobs/{id} as a fallback when events do not arrive. Also keeps
// the server-wide admission state (paused/resumed) that the editors show.

import { submitJob, getJob, cancelJob, fetchResult, getStats, ApiError } from './api.js';
import { events } from './events.js';

// ------------------------------------------------------------ admission state
class Admission extends EventTarget {
  constructor() {
    super();
    this.paused = false;
    this.known = false;
  }
  set(paused, source) {
    paused = !!paused;
    const changed = !this.known || paused !== this.paused;
    this.known = true;
    this.paused = paused;
    if (changed) this.dispatchEvent(new CustomEvent('change', { detail: { paused, source } }));
  }
}
export const admission = new Admission();

// Reads the paused flag from a stats or status object, whatever its shape; undefined if absent.
export function pausedFrom(s) {
  if (!s || typeof s !== 'object') return undefined;
  const a = s.admission;
  if (a && typeof a === 'object') {
    if (typeof a.paused === 'boolean') return a.paused;
    if (typeof a.state === 'string') return a.state === 'paused';
  }
  if (typeof s.paused === 'boolean') return s.paused;
  if (typeof s.intake_paused === 'boolean') return s.intake_paused;
  if (typeof s.admission === 'string') return s.admission === 'paused';
  return undefined;
}

events.addEventListener('paused', () => admission.set(true, 'ws'));
events.addEventListener('resumed', () => admission.set(false, 'ws'));
events.addEventListener('status', (e) => {
  const p = pausedFrom(e.detail) ?? pausedFrom(e.detail.stats);
  if (p !== undefined) admission.set(p, 'ws');
});

export async function refreshAdmission() {
  try {
    const p = pausedFrom(await getStats());
    if (p !== undefined) admission.set(p, 'stats');
  } catch { /* the dashboard shows stats errors */ }
}

// ---------------------------------------------------------------- one job
const TERMINAL = new Set(['done', 'failed', 'cancelled', 'rejected']);

function numberOr(v, d) { return typeof v === 'number' && Number.isFinite(v) ? v : d; }

function messageOf(o) {
  if (!o) return '';
  if (typeof o.error === 'string') return o.error;
  if (o.error && o.error.message) return o.error.message;
  return o.message || o.reason || '';
}

// Submits a job and follows it. fields/files as for submitJob(); onUpdate(info)
// is called with {id, state, position, value, max}; `signal` (AbortSignal)
// cancels it on the server. Resolves to {id, blob} when done; rejects with an
// ApiError carrying the server's message when the job fails or is cancelled
// (code 'aborted' when `signal` cancelled it).
export function runJob(fields, files, { onUpdate = () => {}, signal } = {}) {
  return new Promise((resolve, reject) => {
    const info = { id: null, state: 'submitting', position: null, value: 0, max: 0 };
    let finished = false;
    let pollTimer = null;
    let resultUrl = null;
    const handlers = [];

    const cleanup = () => {
      finished = true;
      clearTimeout(pollTimer);
      for (const [type, fn] of handlers) events.removeEventListener(type, fn);
      if (signal) signal.removeEventListener('abort', onAbort);
    };
    const fail = (err) => { if (!finished) { cleanup(); reject(err); } };
    const update = (patch) => {
      if (finished) return;
      Object.assign(info, patch);
      onUpdate({ ...info });
    };
    const finishDone = async () => {
      if (finished) return;
      update({ state: 'done', value: info.max || 1, max: info.max || 1 });
      cleanup();
      try {
        resolve({ id: info.id, blob: await fetchResult(info.id, resultUrl) });
      } catch (err) {
        reject(err);
      }
    };
    const apply = (j, fromEvent) => {
      if (finished || !j) return;
      const state = fromEvent ? ({ queued: 'queued', started: 'running', progress: 'running' })[j.type] || j.type : j.state;
      const patch = {};
      if (state) patch.state = state;
      const pos = j.queue_position ?? j.position;
      if (typeof pos === 'number') patch.position = pos;
      const prog = j.progress && typeof j.progress === 'object' ? j.progress : j;
      if (typeof prog.value === 'number' && typeof prog.max === 'number') {
        patch.value = prog.value;
        patch.max = prog.max;
      }
      const url = j.result_url || (typeof j.result === 'string' ? j.result : null) || j.url;
      if (url) resultUrl = url;
      update(patch);
      if (state === 'done') finishDone();
      else if (state === 'failed' || state === 'rejected') {
        fail(new ApiError(422, (j.error && j.error.code) || 'failed', messageOf(j) || 'The job failed on the server.'));
      } else if (state === 'cancelled') {
        fail(new ApiError(409, 'cancelled', messageOf(j) || 'The job was cancelled on the server.'));
      }
    };

    const poll = async () => {
      if (finished || !info.id) return;
      try {
        apply(await getJob(info.id), false);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          fail(new ApiError(404, 'not_found', 'The server no longer knows this job (it may have been restarted with a fresh data directory).'));
          return;
        }
        // network trouble: keep trying; the connection indicator says why
      }
      if (!finished) pollTimer = setTimeout(poll, events.live ? 2500 : 800);
    };

    function onAbort() {
      if (finished) return;
      if (info.id) cancelJob(info.id).catch(() => {});
      fail(new ApiError(0, 'aborted', 'The job was cancelled.'));
    }
    if (signal) {
      if (signal.aborted) { onAbort(); return; }
      signal.addEventListener('abort', onAbort);
    }

    // Events may arrive before the 202 answer is read: keep them until the id is known.
    const early = [];
    for (const type of ['queued', 'started', 'progress', 'done', 'failed', 'cancelled']) {
      const fn = (e) => {
        const m = e.detail;
        const jid = m.job && typeof m.job === 'object' ? m.job.id : (m.job ?? m.id);
        const msg = m.job && typeof m.job === 'object' ? { ...m.job, ...m, job: m.job.id } : m;
        if (!info.id) { early.push([jid, msg]); return; }
        if (String(jid) === String(info.id)) apply(msg, true);
      };
      handlers.push([type, fn]);
      events.addEventListener(type, fn);
    }

    submitJob(fields, files).then((r) => {
      if (finished) { if (r && r.id) cancelJob(r.id).catch(() => {}); return; }
      info.id = r.id;
      update({ state: r.state || 'queued', position: numberOr(r.queue_position, null) });
      for (const [jid, msg] of early) if (String(jid) === String(r.id)) apply(msg, true);
      if (TERMINAL.has(info.state)) return;
      pollTimer = setTimeout(poll, events.live ? 1500 : 500);
    }, fail);
  });
}

// One line for the status area.
export function describe(info, paused) {
  switch (info.state) {
    case 'submitting': return 'Uploading…';
    case 'queued':
      if (paused) return 'Waiting for memory — the job will start automatically';
      if (info.position > 0) return `Queued: ${info.position} ${info.position === 1 ? 'job' : 'jobs'} ahead`;
      return 'Queued: starting soon';
    case 'running':
      if (info.max > 0) return `Working… ${Math.round((100 * info.value) / info.max)} %`;
      return 'Working…';
    case 'done': return 'Fetching the result…';
    default: return info.state || '';
  }
}
