// HTTP side of the pixmend API (docs/api.md): JSON helpers that turn every
// failure into an ApiError whose message is the server's own sentence, so the
// UI can show it in words. Every call carries the tab's API key (auth.js);
// a 401 asks for one and sends the call again.

import { withKey, askForKey } from './auth.js';

export const API = '/api/v1';

export class ApiError extends Error {
  // status: HTTP status (0 when the server could not be reached);
  // code: the server's error code ("too_large", ...) or a local one.
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const STATUS_WORDS = {
  400: 'The server did not accept the request',
  404: 'Not found on the server',
  413: 'The image is too large for this server',
  415: 'The server cannot read this file type',
  422: 'The server could not process this image',
  429: 'The server is busy',
  500: 'The server failed',
  503: 'The server is not ready',
};

// Reads an error body ({"error": {"code", "message"}}, or plain text) into an ApiError.
async function errorFrom(res) {
  let code = `http_${res.status}`;
  let message = '';
  const text = await res.text().catch(() => '');
  try {
    const { error } = JSON.parse(text);
    code = error.code;
    message = error.message;
  } catch {
    message = text.trim().slice(0, 300);
  }
  if (!message) message = `${STATUS_WORDS[res.status] || 'The request failed'} (HTTP ${res.status}).`;
  let retry = null;
  const ra = res.headers.get('Retry-After');
  if (ra && /^\d+$/.test(ra.trim())) {
    retry = Number(ra);
    if (!/retry|again/i.test(message)) message += ` Try again in ${retry} s.`;
  }
  return new ApiError(res.status, code, message, retry);
}

const KEY_TRIES = 3; // 401s in a row before the call fails with the server's sentence

// fetch() with the API key, network failures turned into an ApiError, and a
// 401 answered by asking for a key and trying again.
export async function request(path, init = {}) {
  for (let tries = 1; ; tries++) {
    let res;
    try {
      res = await fetch(path, { cache: 'no-store', ...init, headers: withKey(init.headers) });
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network', 'Cannot reach the pixmend server; check that it is running and try again.');
    }
    if (res.ok) return res;
    const err = await errorFrom(res);
    if (res.status !== 401 || tries >= KEY_TRIES) throw err;
    try {
      await askForKey(err.message);
    } catch {
      throw err;
    }
  }
}

export async function getJSON(path, init) {
  const res = await request(path, { headers: { Accept: 'application/json' }, ...init });
  return res.json();
}

// From the last listModels(): the weights the server found on its machine,
// {searched: [{dir, exists}], models: [{model, variant, format, path, serve_arg, loaded}]}
// or null (the server did not look: --models off); and the server's option
// table, {input_size: {min, max, step, default, presets}, priority, quality,
// mask_dilate} (null before the first answer).
let found = null;
let limits = null;
export function foundModels() { return found; }
export function optionLimits() { return limits; }

// GET /api/v1/models -> the models this server can run now: [{name, task, loaded, default, needs_file}]
// (the others are known to the build but not configured).
export async function listModels() {
  const j = await getJSON(`${API}/models`);
  found = j.found ?? null;
  limits = j.limits;
  return j.models.filter((m) => m.loaded);
}

// POST /api/v1/jobs. fields: plain values; files: {name: [blob, filename]}.
// Returns the 202 body: the job object plus status_url and events_url.
export async function submitJob(fields, files) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined && v !== null && v !== '') fd.append(k, String(v));
  }
  for (const [k, [blob, filename]] of Object.entries(files)) fd.append(k, blob, filename);
  const res = await request(`${API}/jobs`, { method: 'POST', body: fd, headers: { Accept: 'application/json' } });
  return res.json();
}

export const getJob = (id) => getJSON(`${API}/jobs/${encodeURIComponent(id)}`);

export async function cancelJob(id) {
  await request(`${API}/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

// The result bytes of a finished job as a Blob (its type from Content-Type).
export async function fetchResult(id, url) {
  const res = await request(url || `${API}/jobs/${encodeURIComponent(id)}/result`);
  return res.blob();
}

export const getStats = () => getJSON(`${API}/stats`);
export const getQueue = () => getJSON(`${API}/queue`);

// A sentence for any error thrown by the helpers above (or anything else).
export function errorText(err) {
  if (!err) return 'Something went wrong.';
  if (err instanceof ApiError) return err.message;
  return err.message ? String(err.message) : String(err);
}
