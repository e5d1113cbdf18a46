// The dashboard: polls GET /api/v1/stats and GET /api/v1/queue, takes job and
// paused/resumed events from /ws, keeps a few minutes of samples, and draws
// them. It reads the server's field names as docs/api.md and
// docs/events.schema.json give them, and no others.

import { getStats, getQueue, getJob, errorText } from './api.js';
import { events } from './events.js';
import { admission } from './jobs.js';
import { TimeChart, HeatStrip, PALETTE } from './chart.js';
import { $, showMessage } from './ui.js';

const WINDOW_S = 300;       // shown
const KEEP_MS = 600 * 1000; // kept
const PAUSED_BAND = 'rgba(227, 179, 65, .22)';
const PAUSE_COLOR = '#c47f00';
const RESUME_COLOR = '#1a7f37';
const NOT_REPORTED = 'Not reported by this server';
const TERMINAL = new Set(['done', 'failed', 'cancelled']);

// Seconds since the epoch (the server's times) -> ms; undefined for null.
function timeMs(v) {
  return typeof v === 'number' ? v * 1000 : undefined;
}

// GET /api/v1/stats in the shape the charts use. The names are the server's
// one set (docs/api.md, docs/events.schema.json); there are no alternatives.
export function normalize(s, t = Date.now()) {
  const { cpu, memory, queue, admission: adm, latency_ms: lat } = s;
  return {
    t,
    uptime: s.uptime_s,
    version: s.version,
    state: s.state,
    cpuCores: cpu.per_core,
    cpuTotal: cpu.total,
    rss: memory.rss_bytes,
    budget: memory.budget_bytes,
    reserved: memory.reserved_bytes,
    heap: memory.pm_mem_in_use,
    gpus: s.gpus.map((g) => ({ name: g.name, used: g.mem_used_bytes, total: g.mem_total_bytes, util: g.util_percent })),
    lanes: { ...queue.lanes },
    depth: queue.depth,
    running: s.running,
    workers: s.workers,
    paused: adm.paused,
    gauge: adm.gauge,
    high: adm.high_mark,
    low: adm.low_mark,
    pauses: adm.pauses,
    transitions: adm.transitions.map((e) => ({ t: timeMs(e.t), paused: e.paused })),
    // Percentiles only once a job finished (the server reports 0 before).
    latency: lat.count > 0 ? { p50: lat.p50, p90: lat.p90, p95: lat.p95, p99: lat.p99 } : {},
    avgRun: s.avg_run_seconds > 0 ? s.avg_run_seconds * 1000 : undefined,
    counters: s.jobs,
    recent: s.recent_jobs,
  };
}

// ---------------------------------------------------------------- formats
export function fmtBytes(b) {
  if (b === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return `${b >= 100 || i === 0 ? Math.round(b) : b.toFixed(1)} ${u[i]}`;
}
const fmtPct = (v) => (v === undefined ? '–' : `${Math.round(v)} %`);
export function fmtMs(v) {
  if (v === undefined) return '–';
  if (v >= 10000) return `${(v / 1000).toFixed(0)} s`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)} s`;
  return `${Math.round(v)} ms`;
}
function fmtDur(v) { return v === undefined || v === null ? '' : fmtMs(v); }
function fmtTime(t) {
  if (t === undefined) return '';
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ------------------------------------------------------------- dashboard
export class Dashboard {
  constructor() {
    this.samples = [];
    this.transitions = [];   // {t, paused}
    this.jobs = new Map();   // id -> row, from events and stats
    this.visible = false;
    this.timer = null;
    this.inflight = false;
    this.failures = 0;
    this.root = $('panel-dashboard');
    this.onPoll = () => {};   // (ok) after each poll of /api/v1/stats
    const card = (id) => {
      const c = $(id);
      return { card: c, canvas: c.querySelector('canvas'), legend: c.querySelector('.legend') };
    };
    this.c = {
      cpu: card('card-cpu'), mem: card('card-mem'), adm: card('card-admission'),
      queue: card('card-queue'), lat: card('card-latency'), gpu: card('card-gpu'),
    };
    this.cpuLines = new TimeChart(this.c.cpu.canvas);
    this.cpuHeat = new HeatStrip(this.c.cpu.canvas);
    this.memChart = new TimeChart(this.c.mem.canvas);
    this.admChart = new TimeChart(this.c.adm.canvas);
    this.queueChart = new TimeChart(this.c.queue.canvas);
    this.latChart = new TimeChart(this.c.lat.canvas);
    this.gpuChart = new TimeChart(this.c.gpu.canvas);

    events.addEventListener('paused', (e) => this.transition(true, timeMs(e.detail.t)));
    events.addEventListener('resumed', (e) => this.transition(false, timeMs(e.detail.t)));
    events.addEventListener('message', (e) => this.jobEvent(e.detail));
    document.addEventListener('visibilitychange', () => this.schedule(0));
    this.schedule(0);
  }

  setVisible(v) {
    this.visible = v;
    if (v) { this.render(); this.schedule(0); }
  }

  // Polls every second while shown (5 s otherwise, to keep the admission state fresh).
  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poll(), delay);
  }

  async poll() {
    const period = this.visible && !document.hidden ? 1000 : 5000;
    if (this.inflight) { this.schedule(period); return; }
    this.inflight = true;
    try {
      const s = await getStats();
      let q = null;
      if (this.visible) { try { q = await getQueue(); } catch { q = null; } }
      this.failures = 0;
      this.onPoll(true);
      this.showError('');
      this.ingest(s, q);
    } catch (err) {
      this.failures++;
      this.onPoll(false);
      if (this.visible) this.showError(`Cannot read /api/v1/stats: ${errorText(err)}`);
    } finally {
      this.inflight = false;
      this.schedule(period * Math.min(this.failures + 1, 5));
    }
  }

  showError(msg) {
    showMessage($('db-error'), msg);
  }

  transition(paused, t = Date.now()) {
    const last = this.transitions[this.transitions.length - 1];
    if (last && last.paused === paused) return;
    this.transitions.push({ t: t || Date.now(), paused });
    admission.set(paused, 'dashboard');
    if (this.visible) this.render();
  }

  ingest(s, queue) {
    const n = normalize(s);
    n.raw = s;
    if (queue) this.mergeQueue(n, queue);
    this.samples.push(n);
    const cut = n.t - KEEP_MS;
    while (this.samples.length && this.samples[0].t < cut) this.samples.shift();
    for (const tr of n.transitions) {
      if (!this.transitions.some((x) => Math.abs(x.t - tr.t) < 1000 && x.paused === tr.paused)) this.transitions.push(tr);
    }
    this.transitions.sort((a, b) => a.t - b.t);
    if (n.paused !== undefined) {
      const last = this.transitions[this.transitions.length - 1];
      if (!last ? n.paused : last.paused !== n.paused) this.transitions.push({ t: n.t, paused: n.paused });
      admission.set(n.paused, 'stats');
    }
    while (this.transitions.length > 200) this.transitions.shift();
    for (const j of n.recent || []) this.upsertJob(j);
    this.root.dataset.samples = String(this.samples.length);
    if (this.visible) this.render();
  }

  // The jobs GET /api/v1/queue lists ({depth, max, running: [Job], queued: [Job]}).
  mergeQueue(n, q) {
    for (const it of [...q.queued, ...q.running]) this.upsertJob(it);
  }

  // A job event from /ws: {type, seq, job (the id), state, ...the job's own fields}.
  jobEvent(m) {
    const kinds = { queued: 'queued', started: 'running', progress: 'running', done: 'done', failed: 'failed', cancelled: 'cancelled' };
    if (!kinds[m.type]) return;
    const now = Date.now();
    const row = this.jobs.get(m.job) || { id: m.job, submitted: now };
    if (m.type === 'queued') Object.assign(row, { task: m.task, model: m.model, lane: m.lane, priority: m.priority });
    row.state = m.state;
    if (m.type === 'started') row.started = row.started || now;
    if (TERMINAL.has(m.type)) row.finished = row.finished || now;
    if (m.error) row.note = m.error.message;
    if (m.type === 'queued') row.note = `position ${m.queue_position}`;
    if (m.type === 'started' && row.note && row.note.startsWith('position')) row.note = '';
    this.jobs.set(row.id, row);
    this.trimJobs();
    // A finished job's size and timings come from GET /api/v1/jobs/{id}, once.
    if (TERMINAL.has(m.type) && !row.detailed) {
      row.detailed = true;
      getJob(row.id).then((j) => { this.upsertJob(j); if (this.visible) this.renderJobs(); }, () => {});
    }
    if (this.visible) this.renderJobs();
  }

  // A row of the jobs table from a Job object (docs/api.md).
  rowFrom(j) {
    const r = { id: j.id, task: j.task, model: j.model, state: j.state, lane: j.lane, priority: j.priority };
    if (j.width && j.height) r.size = `${j.width}×${j.height}`;
    r.submitted = timeMs(j.created_at);
    const st = timeMs(j.started_at);
    const fi = timeMs(j.finished_at);
    if (st) r.started = st;
    if (fi) r.finished = fi;
    if (j.resources.wall_s !== null) r.run = j.resources.wall_s * 1000;
    r.note = j.error ? j.error.message : '';
    return r;
  }

  upsertJob(j) {
    const r = this.rowFrom(j);
    const row = this.jobs.get(r.id) || {};
    this.jobs.set(r.id, Object.assign(row, r));
    this.trimJobs();
  }

  trimJobs() {
    if (this.jobs.size <= 60) return;
    const rows = [...this.jobs.values()].sort((a, b) => (b.submitted || 0) - (a.submitted || 0));
    this.jobs = new Map(rows.slice(0, 50).map((r) => [r.id, r]));
  }

  // ---------------------------------------------------------------- render
  render() {
    const last = this.samples[this.samples.length - 1];
    if (!last) return;
    const now = Date.now();
    // The window grows from one minute to five as samples accumulate.
    const span = (now - this.samples[0].t) / 1000;
    const base = { now, window: span < 60 ? 60 : span < 120 ? 120 : WINDOW_S };
    const bands = this.pausedBands(now);
    const markers = this.transitions.map((t) => ({
      t: t.t, label: t.paused ? 'paused' : 'resumed', color: t.paused ? PAUSE_COLOR : RESUME_COLOR,
    }));
    this.renderHead(last);

    // CPU
    const cores = last.cpuCores ? last.cpuCores.length : 0;
    $('val-cpu').textContent = last.cpuTotal !== undefined ? `${fmtPct(last.cpuTotal)} avg${cores ? ` · ${cores} cores` : ''}` : '';
    if (cores > 8) {
      this.cpuHeat.draw({ ...base, rows: cores, samples: this.samples.filter((s) => s.cpuCores).map((s) => ({ t: s.t, values: s.cpuCores })) });
      legend(this.c.cpu.legend, [['0 %', '#264678'], ['50 %', '#8fb000'], ['100 %', '#d62728']]);
    } else {
      const series = [];
      for (let i = 0; i < cores; i++) {
        series.push({ label: `core ${i}`, color: PALETTE[i % PALETTE.length], points: this.samples.filter((s) => s.cpuCores).map((s) => [s.t, s.cpuCores[i]]) });
      }
      if (!cores) series.push({ label: 'total', color: PALETTE[0], points: this.series((s) => s.cpuTotal) });
      this.cpuLines.draw({ ...base, series, min: 0, max: 100, format: (v) => `${v}%`, empty: NOT_REPORTED });
      legend(this.c.cpu.legend, series.map((s) => [s.label, s.color]));
    }
    this.c.cpu.canvas.setAttribute('aria-label', `CPU use per core: ${(last.cpuCores || []).map((v, i) => `core ${i} ${fmtPct(v)}`).join(', ') || fmtPct(last.cpuTotal)}`);

    // Memory
    const memSeries = [{ label: 'RSS', color: PALETTE[0], fill: true, points: this.series((s) => s.rss) }];
    if (this.samples.some((s) => s.reserved !== undefined)) memSeries.push({ label: 'reserved by running jobs', color: PALETTE[4], points: this.series((s) => s.reserved) });
    if (this.samples.some((s) => s.heap !== undefined)) memSeries.push({ label: 'pixmend heap', color: PALETTE[2], points: this.series((s) => s.heap), dash: [3, 3] });
    const memRefs = last.budget !== undefined ? [{ value: last.budget, label: `budget ${fmtBytes(last.budget)}`, color: '#d62728' }] : [];
    $('val-mem').textContent = last.rss !== undefined ? `${fmtBytes(last.rss)}${last.budget ? ` of ${fmtBytes(last.budget)}` : ''}` : '';
    this.memChart.draw({ ...base, series: memSeries, refs: memRefs, bands, format: fmtBytes, empty: NOT_REPORTED });
    legend(this.c.mem.legend, [...memSeries.map((s) => [s.label, s.color]), ...(memRefs.length ? [['budget', '#d62728']] : [])]);
    this.c.mem.canvas.setAttribute('aria-label', `Resident memory ${fmtBytes(last.rss)}, budget ${fmtBytes(last.budget)}`);

    // Admission
    const admSeries = [];
    if (this.samples.some((s) => s.gauge !== undefined)) admSeries.push({ label: 'memory gauge', color: PALETTE[0], fill: true, points: this.series((s) => (s.gauge === undefined ? undefined : s.gauge * 100)) });
    const admRefs = [];
    if (last.high !== undefined) admRefs.push({ value: last.high * 100, label: `pause at ${Math.round(last.high * 100)} %`, color: PAUSE_COLOR });
    if (last.low !== undefined) admRefs.push({ value: last.low * 100, label: `resume below ${Math.round(last.low * 100)} %`, color: RESUME_COLOR });
    this.admChart.draw({ ...base, series: admSeries, refs: admRefs, bands, markers, min: 0, max: 100, format: (v) => `${v}%`,
      empty: last.paused === undefined ? NOT_REPORTED : 'No memory gauge reported' });
    legend(this.c.adm.legend, [...admSeries.map((s) => [s.label, s.color]), ['paused', PAUSED_BAND], ['pause mark', PAUSE_COLOR], ['resume mark', RESUME_COLOR]]);
    $('val-adm').textContent = last.paused === undefined ? '' : `${last.paused ? 'paused' : 'admitting'}${last.gauge !== undefined ? ` · ${Math.round(last.gauge * 100)} %` : ''}`;

    // Queue
    const laneNames = [...new Set(this.samples.flatMap((s) => (s.lanes ? Object.keys(s.lanes) : [])))];
    const qSeries = laneNames.map((name, i) => ({ label: name, color: PALETTE[i % PALETTE.length], points: this.series((s) => (s.lanes ? s.lanes[name] ?? 0 : undefined)) }));
    if (!qSeries.length) qSeries.push({ label: 'queued', color: PALETTE[0], points: this.series((s) => s.depth) });
    if (this.samples.some((s) => s.running !== undefined)) qSeries.push({ label: 'running', color: PALETTE[3], dash: [4, 3], points: this.series((s) => s.running) });
    const qmax = Math.max(4, ...qSeries.flatMap((s) => s.points.map((p) => p[1]).filter(Number.isFinite)));
    this.queueChart.draw({ ...base, series: qSeries, min: 0, max: Math.ceil((qmax * 1.1) / 4) * 4, bands, format: (v) => String(Math.round(v)), empty: NOT_REPORTED });
    legend(this.c.queue.legend, qSeries.map((s) => [s.label, s.color]));
    const laneText = last.lanes ? Object.entries(last.lanes).map(([k, v]) => `${k} ${v}`).join(' · ') : '';
    $('val-queue').textContent = last.depth !== undefined ? `${last.depth} queued${laneText ? ` (${laneText})` : ''}${last.running !== undefined ? ` · ${last.running} running` : ''}` : '';

    // Latency
    const pcts = ['p50', 'p90', 'p95', 'p99'].filter((p) => this.samples.some((s) => s.latency[p] !== undefined));
    const lSeries = pcts.map((p, i) => ({ label: p, color: [PALETTE[2], PALETTE[3], PALETTE[6], PALETTE[1]][i], points: this.series((s) => s.latency[p]) }));
    if (this.samples.some((s) => s.avgRun !== undefined)) lSeries.push({ label: 'mean run time', color: PALETTE[0], dash: [4, 3], points: this.series((s) => s.avgRun) });
    this.latChart.draw({ ...base, series: lSeries, format: fmtMs, empty: 'No finished jobs yet' });
    legend(this.c.lat.legend, lSeries.map((s) => [s.label, s.color]));
    $('val-lat').textContent = pcts.length ? pcts.map((p) => `${p} ${fmtMs(last.latency[p])}`).join(' · ')
      : last.avgRun !== undefined ? `mean run ${fmtMs(last.avgRun)}` : 'no finished jobs yet';

    // GPU
    const gpus = last.gpus || [];
    this.c.gpu.card.hidden = !gpus.length;
    if (gpus.length) {
      const gSeries = [];
      gpus.forEach((g, i) => {
        gSeries.push({ label: `${g.name} memory %`, color: PALETTE[(2 * i) % PALETTE.length], fill: gpus.length === 1, points: this.series((s) => { const x = s.gpus && s.gpus[i]; return x && x.total ? (100 * x.used) / x.total : undefined; }) });
        gSeries.push({ label: `${g.name} utilisation %`, color: PALETTE[(2 * i + 1) % PALETTE.length], dash: [4, 3], points: this.series((s) => s.gpus && s.gpus[i] ? s.gpus[i].util : undefined) });
      });
      this.gpuChart.draw({ ...base, series: gSeries, min: 0, max: 100, format: (v) => `${v}%` });
      legend(this.c.gpu.legend, gSeries.map((s) => [s.label, s.color]));
      $('val-gpu').textContent = gpus.map((g) => `${fmtBytes(g.used)} of ${fmtBytes(g.total)} · ${fmtPct(g.util)}`).join(' | ');
    }
    this.renderJobs();
    this.renderRaw(last.raw);
  }

  renderHead(last) {
    const adm = $('db-admission');
    if (last.paused === undefined) {
      adm.dataset.state = 'unknown';
      adm.textContent = 'Admission: not reported';
    } else {
      adm.dataset.state = last.paused ? 'paused' : 'admitting';
      adm.textContent = last.paused ? 'Intake paused: waiting for memory' : 'Admitting jobs';
    }
    const parts = [];
    if (last.state && last.state !== 'ready') parts.push(`server ${last.state}`);
    if (last.version) parts.push(`pixmend ${last.version}`);
    if (last.uptime !== undefined) parts.push(`up ${fmtUptime(last.uptime)}`);
    if (last.workers !== undefined) parts.push(`${last.workers} ${last.workers === 1 ? 'worker' : 'workers'}`);
    if (last.counters) {
      for (const k of ['done', 'failed', 'cancelled', 'rejected']) {
        if (typeof last.counters[k] === 'number') parts.push(`${last.counters[k]} ${k}`);
      }
    }
    if (last.pauses !== undefined) parts.push(`${last.pauses} ${last.pauses === 1 ? 'pause' : 'pauses'}`);
    parts.push(`updated ${fmtTime(last.t)}`);
    $('db-summary').textContent = parts.join(' · ');
  }

  renderJobs() {
    const tbody = $('db-jobs').tBodies[0];
    const rows = [...this.jobs.values()].sort((a, b) => (b.submitted || 0) - (a.submitted || 0)).slice(0, 20);
    if (!rows.length) {
      tbody.replaceChildren(tr([['No jobs yet.', 'muted', 9]]));
      return;
    }
    tbody.replaceChildren(...rows.map((r) => {
      const wait = r.wait ?? (r.started && r.submitted ? r.started - r.submitted : undefined);
      const run = r.run ?? (r.finished && r.started ? r.finished - r.started : undefined);
      return tr([
        [String(r.id).slice(0, 12), 'mono'], [r.task || ''], [r.model || ''], [r.state || '', `state-${r.state}`],
        [r.size || ''], [fmtTime(r.submitted)], [fmtDur(wait)], [fmtDur(run)], [r.note || '', 'note'],
      ]);
    }));
  }

  renderRaw(raw) {
    const details = this.root.querySelector('details.raw');
    if (!details.open) return;
    const tbody = $('db-raw').tBodies[0];
    const rows = [];
    flatten(raw, '', rows);
    tbody.replaceChildren(...rows.slice(0, 400).map(([k, v]) => {
      const r = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = k;
      const td = document.createElement('td');
      td.textContent = v;
      r.append(th, td);
      return r;
    }));
  }

  series(fn) {
    const out = [];
    for (const s of this.samples) {
      const v = fn(s);
      if (v !== undefined && v !== null && Number.isFinite(v)) out.push([s.t, v]);
    }
    return out;
  }

  pausedBands(now) {
    const bands = [];
    let start = null;
    for (const t of this.transitions) {
      if (t.paused && start === null) start = t.t;
      if (!t.paused && start !== null) { bands.push({ t0: start, t1: t.t, color: PAUSED_BAND }); start = null; }
    }
    if (start !== null) bands.push({ t0: start, t1: now, color: PAUSED_BAND });
    return bands;
  }
}

function fmtUptime(s) {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

function legend(ul, items) {
  ul.replaceChildren(...items.map(([label, color]) => {
    const li = document.createElement('li');
    li.textContent = label;
    li.style.setProperty('--c', color);
    return li;
  }));
}

function tr(cells) {
  const r = document.createElement('tr');
  for (const [text, cls, span] of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    if (span) td.colSpan = span;
    r.append(td);
  }
  return r;
}

function flatten(v, prefix, out) {
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x !== 'object' || x === null)) { out.push([prefix, v.map((x) => (typeof x === 'number' ? +x.toFixed(3) : x)).join(', ')]); return; }
    v.slice(0, 20).forEach((x, i) => flatten(x, `${prefix}[${i}]`, out));
  } else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix, typeof v === 'number' && !Number.isInteger(v) ? String(+v.toFixed(3)) : String(v)]);
  }
}
