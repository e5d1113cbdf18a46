// The dashboard: polls GET /api/v1/stats (and takes "status" events from /ws),
// keeps a few minutes of samples, and draws them. Every field is optional:
// what the server does not report is left out (docs/ui.md lists the fields).

import { getStats, getQueue, getJob, errorText } from './api.js';
import { events } from './events.js';
import { admission, pausedFrom } from './jobs.js';
import { TimeChart, HeatStrip, PALETTE } from './chart.js';
import { $, showMessage } from './ui.js';

const WINDOW_S = 300;       // shown
const KEEP_MS = 600 * 1000; // kept
const PAUSED_BAND = 'rgba(227, 179, 65, .22)';
const PAUSE_COLOR = '#c47f00';
const RESUME_COLOR = '#1a7f37';
const NOT_REPORTED = 'Not reported by this server';

// ------------------------------------------------------------- field access
function at(obj, path) {
  let o = obj;
  for (const k of path.split('.')) {
    if (o == null || typeof o !== 'object') return undefined;
    o = o[k];
  }
  return o;
}
// First finite number among the paths.
function num(obj, ...paths) {
  for (const p of paths) {
    const v = at(obj, p);
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}
function arr(obj, ...paths) {
  for (const p of paths) {
    const v = at(obj, p);
    if (Array.isArray(v)) return v;
  }
  return undefined;
}
function obj(o, ...paths) {
  for (const p of paths) {
    const v = at(o, p);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  }
  return undefined;
}
function ms(o, base) {
  const m = num(o, `${base}_ms`, base);
  if (m !== undefined) return m;
  const s = num(o, `${base}_s`);
  return s !== undefined ? s * 1000 : undefined;
}
function fraction(v) {
  if (v === undefined) return undefined;
  return v > 1.5 ? v / 100 : v;
}
function timeMs(v) {
  if (typeof v === 'number') return v > 1e12 ? v : v * 1000;
  if (typeof v === 'string') { const t = Date.parse(v); return Number.isNaN(t) ? undefined : t; }
  return undefined;
}

// The stats object in the shape the charts use; undefined where absent.
export function normalize(s, t = Date.now()) {
  const n = { t };
  n.uptime = num(s, 'uptime_s', 'uptime');
  n.version = at(s, 'version');
  n.state = typeof s.state === 'string' ? s.state : undefined;
  const per = arr(s, 'cpu.per_core', 'cpu.per_core_percent', 'cpu.cores_percent', 'cpu_per_core');
  n.cpuCores = per ? per.map((v) => (typeof v === 'number' ? v : num(v, 'percent', 'util', 'busy'))) : undefined;
  n.cpuTotal = num(s, 'cpu.total', 'cpu.total_percent', 'cpu.percent', 'cpu_percent');
  if (n.cpuTotal === undefined && n.cpuCores && n.cpuCores.length) {
    n.cpuTotal = n.cpuCores.reduce((a, b) => a + (b || 0), 0) / n.cpuCores.length;
  }
  n.rss = num(s, 'memory.rss_bytes', 'memory.rss', 'rss_bytes', 'rss');
  n.budget = num(s, 'memory.budget_bytes', 'memory.budget', 'admission.budget_bytes', 'budget_bytes', 'mem_budget');
  n.reserved = num(s, 'memory.reserved_bytes', 'memory.in_use_bytes', 'memory.predicted_bytes', 'admission.reserved_bytes');
  n.heap = num(s, 'memory.heap_bytes', 'memory.pm_mem_in_use', 'memory.heap');
  n.limit = num(s, 'memory.limit_bytes', 'memory.cgroup_limit_bytes', 'memory.host_total_bytes');
  const gpus = arr(s, 'gpus', 'gpu.devices') || (obj(s, 'gpu') ? [obj(s, 'gpu')] : undefined);
  n.gpus = gpus ? gpus.map((g, i) => ({
    name: g.name || `GPU ${g.index ?? i}`,
    used: num(g, 'mem_used_bytes', 'mem_used', 'memory_used_bytes', 'memory.used'),
    total: num(g, 'mem_total_bytes', 'mem_total', 'memory_total_bytes', 'memory.total'),
    util: num(g, 'util_percent', 'util', 'utilization'),
  })) : undefined;
  const lanes = obj(s, 'queue.lanes', 'lanes');
  if (lanes) {
    n.lanes = {};
    for (const [k, v] of Object.entries(lanes)) {
      const d = typeof v === 'number' ? v : num(v, 'depth', 'queued', 'length');
      if (d !== undefined) n.lanes[k] = d;
    }
  } else {
    const la = arr(s, 'queue.lanes', 'lanes');
    if (la) {
      n.lanes = {};
      la.forEach((l, i) => { const d = num(l, 'depth', 'queued', 'length'); if (d !== undefined) n.lanes[l.name || `lane ${i}`] = d; });
    }
  }
  n.depth = num(s, 'queue.depth', 'queue.queued', 'queue_depth', 'queued');
  if (n.depth === undefined && n.lanes) n.depth = Object.values(n.lanes).reduce((a, b) => a + b, 0);
  n.running = num(s, 'queue.running', 'running', 'jobs.running');
  n.workers = num(s, 'queue.workers', 'workers', 'queue.slots');
  n.paused = pausedFrom(s);
  n.gauge = fraction(num(s, 'admission.gauge', 'admission.usage', 'admission.gauge_percent', 'memory.gauge'));
  n.high = fraction(num(s, 'admission.high_mark', 'admission.high', 'admission.high_percent'));
  n.low = fraction(num(s, 'admission.low_mark', 'admission.low', 'admission.low_percent'));
  n.pauses = num(s, 'admission.pauses', 'admission.pauses_total', 'admission.paused_total');
  n.transitions = (arr(s, 'admission.transitions', 'admission.events') || [])
    .map((e) => ({ t: timeMs(e.t ?? e.time ?? e.at), paused: e.paused ?? (e.type === 'paused' || e.state === 'paused') }))
    .filter((e) => e.t !== undefined);
  const lat = obj(s, 'latency_ms', 'latency') || {};
  const scale = at(s, 'latency_ms') ? 1 : undefined;
  n.latency = {};
  for (const p of ['p50', 'p90', 'p95', 'p99']) {
    const v = scale ? num(lat, p) : ms(lat, p);
    if (v !== undefined) n.latency[p] = v;
  }
  n.avgRun = ms(s, 'avg_run') ?? (num(s, 'avg_run_seconds') !== undefined ? num(s, 'avg_run_seconds') * 1000 : undefined);
  if (n.avgRun === 0) n.avgRun = undefined;
  n.counters = obj(s, 'jobs', 'counters');
  n.recent = arr(s, 'recent_jobs', 'jobs.recent', 'recent');
  return n;
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

    events.addEventListener('status', (e) => {
      const s = e.detail.stats || e.detail;
      if (s && (s.cpu || s.memory || s.queue || s.admission)) this.ingest(s);
    });
    events.addEventListener('paused', (e) => this.transition(true, timeMs(e.detail.t ?? e.detail.time)));
    events.addEventListener('resumed', (e) => this.transition(false, timeMs(e.detail.t ?? e.detail.time)));
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

  // Lane depths and the listed jobs from GET /api/v1/queue ({depth, queued: [job],
  // running: [job]}); lanes only where the jobs name one.
  mergeQueue(n, q) {
    const queued = Array.isArray(q) ? q : arr(q, 'queued', 'jobs', 'items') || [];
    const running = arr(q, 'running') || [];
    if (!n.lanes && queued.some((it) => it.lane)) {
      n.lanes = {};
      for (const it of queued) n.lanes[it.lane || 'normal'] = (n.lanes[it.lane || 'normal'] || 0) + 1;
    }
    if (n.depth === undefined) n.depth = num(q, 'depth', 'length') ?? queued.length;
    if (n.running === undefined && running.length) n.running = running.length;
    for (const it of [...queued, ...running]) this.upsertJob(it);
  }

  jobEvent(m) {
    const kinds = { queued: 'queued', started: 'running', progress: 'running', done: 'done', failed: 'failed', cancelled: 'cancelled' };
    if (!kinds[m.type]) return;
    const id = m.job && typeof m.job === 'object' ? m.job.id : m.job ?? m.id;
    if (id === undefined) return;
    const now = Date.now();
    const row = this.jobs.get(String(id)) || { id: String(id), submitted: now };
    const { id: _ignored, ...fields } = this.rowFrom(m.job && typeof m.job === 'object' ? m.job : m);
    delete fields.state;
    Object.assign(row, fields);
    row.state = kinds[m.type];
    if (m.type === 'started') row.started = row.started || now;
    if (['done', 'failed', 'cancelled'].includes(m.type)) row.finished = row.finished || now;
    if (m.type === 'failed') row.note = m.message || (m.error && m.error.message) || row.note;
    if (m.type === 'queued' && typeof (m.position ?? m.queue_position) === 'number') row.note = `position ${m.position ?? m.queue_position}`;
    if (m.type === 'started' && row.note && row.note.startsWith('position')) row.note = '';
    this.jobs.set(row.id, row);
    this.trimJobs();
    // A finished job's size and timings come from GET /api/v1/jobs/{id}, once.
    if (['done', 'failed', 'cancelled'].includes(m.type) && !row.detailed) {
      row.detailed = true;
      getJob(row.id).then((j) => { this.upsertJob(j); if (this.visible) this.renderJobs(); }, () => {});
    }
    if (this.visible) this.renderJobs();
  }

  rowFrom(j) {
    const r = {};
    if (j.id !== undefined) r.id = String(j.id);
    for (const k of ['task', 'model', 'state', 'lane', 'priority']) if (j[k] !== undefined) r[k] = j[k];
    const w = j.width ?? at(j, 'image.width');
    const h = j.height ?? at(j, 'image.height');
    if (w && h) r.size = `${w}×${h}`;
    const sub = timeMs(j.submitted_at ?? j.created_at ?? j.queued_at);
    const st = timeMs(j.started_at);
    const fi = timeMs(j.finished_at ?? j.done_at);
    if (sub) r.submitted = sub;
    if (st) r.started = st;
    if (fi) r.finished = fi;
    const wait = num(j, 'wait_ms', 'queue_ms');
    const secs = num(j, 'seconds', 'run_seconds');
    const run = num(j, 'run_ms', 'duration_ms', 'elapsed_ms') ?? (secs !== undefined ? secs * 1000 : undefined);
    if (wait !== undefined) r.wait = wait;
    if (run !== undefined) r.run = run;
    const err = j.error && typeof j.error === 'object' ? j.error.message : j.error || j.message;
    if (err) r.note = String(err);
    return r;
  }

  upsertJob(j) {
    if (!j || j.id === undefined) return;
    const r = this.rowFrom(j);
    const row = this.jobs.get(r.id) || { submitted: Date.now() };
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
