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

// The admission object of stats, /healthz, /readyz and the status, paused
// and resumed events (docs/api.md) says whether intake is paused.
events.addEventListener('paused', () => admission.set(true, 'ws'));
events.addEventListener('resumed', () => admission.set(false, 'ws'));
events.addEventListener('status', (e) => admission.set(e.detail.admission.paused, 'ws'));

export async function refreshAdmission() {
  try {
    admission.set((await getStats()).admission.paused, 'stats');
  } catch { /* the dashboard shows stats errors */ }
}

// ---------------------------------------------------------------- one job
const TERMINAL = new Set(['done', 'failed', 'cancelled']);



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
    // j: a Job object (GET /api/v1/jobs/{id}) or a job event, which carries
    // some of the job's fields under the same names (docs/api.md).
    const apply = (j) => {
      if (finished) return;
      const patch = { state: j.state };
      if ('queue_position' in j && j.queue_position !== null) patch.position = j.queue_position;
      if (j.progress) {
        patch.value = j.progress.value;
        patch.max = j.progress.max;
      }
      if (j.result_url) resultUrl = j.result_url;
      update(patch);
      if (j.state === 'done') finishDone();
      else if (j.state === 'failed') {
        fail(new ApiError(422, j.error.code, j.error.message || 'The job failed on the server.'));
      } else if (j.state === 'cancelled') {
        fail(new ApiError(409, 'cancelled', j.error.message || 'The job was cancelled on the server.'));
      }
    };

    const poll = async () => {
      if (finished || !info.id) return;
      try {
        apply(await getJob(info.id));
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
        if (!info.id) { early.push(m); return; }
        if (m.job === info.id) apply(m);
      };
      handlers.push([type, fn]);
      events.addEventListener(type, fn);
    }

    submitJob(fields, files).then((r) => {
      if (finished) { if (r && r.id) cancelJob(r.id).catch(() => {}); return; }
      info.id = r.id;
      apply(r); // the 202 answer is the job object
      for (const m of early) if (m.job === r.id) apply(m);
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
