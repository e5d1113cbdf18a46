// End-to-end test of the browser UI: a real `pixmend serve` (built binary, free
// loopback port, temporary data directory) with API keys and HTTPS (a
// throwaway certificate made here by openssl, which chromium is told to trust
// by its public key), and Debian's chromium driven by playwright-core.
// Screenshots go to tests/e2e/out (PM_E2E_OUT).
//
// Environment: PIXMEND (the binary), PM_SOURCE_DIR (the checkout; web/ is
// served from it), CHROMIUM (default /usr/bin/chromium), PM_E2E_OUT.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { encodePNG, decodePNG } from './png.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.PM_SOURCE_DIR || path.resolve(HERE, '../..');
const PIXMEND = process.env.PIXMEND || path.join(SRC, 'build/pixmend');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.PM_E2E_OUT || path.join(HERE, 'out');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const MAX_PIXELS = 100000; // small, so that an over-size upload shows the server's error
const JOB_DELAY_MS = 1200; // each job reports progress for this long before it runs
const API_KEY = 'e2e-key-0123456789abcdef0123';

// A self-signed certificate for 127.0.0.1 and the base64 SHA-256 of its
// public key (chromium's --ignore-certificate-errors-spki-list trusts it, so
// the page is a secure context and its service worker registers).
function makeTls(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const pub = execFileSync('openssl', ['x509', '-in', cert, '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
  const spki = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
  return { cert, key, spki };
}

function writeKeys(dir) {
  const file = path.join(dir, 'keys');
  fs.writeFileSync(file, `# e2e\ntester:${API_KEY}\n`, { mode: 0o600 });
  return file;
}
let tls = null;

// The test's own calls to the server (node's fetch): with the key, and
// without verifying the throwaway certificate (the browser verifies it
// against its pinned public key).
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
function apiFetch(url, init = {}) {
  return fetch(url, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${API_KEY}` } });
}

// ------------------------------------------------------------------ photos
// A 320x240 photo: sky gradient, noisy grass, a red disk at (200, 150) r 26.
const W = 320, H = 240, DISK = { x: 200, y: 150, r: 26 };
function makePhoto(w = W, h = H) {
  const px = new Uint8Array(w * h * 3);
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 16) & 0xff; };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      if (y < h * 0.45) {
        px[i] = 100 + (y >> 1); px[i + 1] = 150 + (y >> 2); px[i + 2] = 235;
      } else {
        const n = (rnd() % 25) - 12;
        px[i] = 60 + n; px[i + 1] = 128 + n + (x % 13); px[i + 2] = 48 + n;
      }
      if ((x - DISK.x) ** 2 + (y - DISK.y) ** 2 <= DISK.r ** 2) { px[i] = 220; px[i + 1] = 30; px[i + 2] = 36; }
    }
  }
  return encodePNG(w, h, 3, px);
}
const isRed = (p, i) => p[i] > 170 && p[i + 1] < 90 && p[i + 2] < 90;

// ------------------------------------------------------------------ server
// The GPU the server sees is the fake NVML library of the tests (built with
// them; PM_FAKE_NVML), loaded through the server's own dlopen path, so that
// the test can move the memory gauge: one GPU, used / total bytes from a file.
const FAKE_NVML = process.env.PM_FAKE_NVML || '';
let nvmlScript = '';
function setGpuUsed(fraction) {
  const total = 8 * 2 ** 30;
  fs.writeFileSync(nvmlScript, `1 ${Math.round(total * fraction)} ${total} 40\n`);
}

function startServer(dataDir, keys) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    if (FAKE_NVML && fs.existsSync(FAKE_NVML)) {
      nvmlScript = path.join(path.dirname(dataDir), 'nvml-script');
      setGpuUsed(0.2);
      env.PIXMEND_NVML_LIBRARY = FAKE_NVML;
      env.PM_FAKE_NVML_FILE = nvmlScript;
    }
    const proc = spawn(PIXMEND, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir,
      '--web-dir', path.join(SRC, 'web'), '--max-pixels', String(MAX_PIXELS),
      '--job-delay-ms', String(JOB_DELAY_MS), '--log-level', 'warn', '--drain-seconds', '5',
      '--sample-interval', '0.1', '--api-keys', keys, '--tls-cert', tls.cert, '--tls-key', tls.key],
    { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`pixmend serve did not start in 20 s:\n${out}\n${err}`)); }, 20000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /serving on https:\/\/([\d.]+):(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ proc, base: `https://127.0.0.1:${m[2]}`, stderr: () => err }); }
    });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`pixmend serve exited (${code}) before serving:\n${out}\n${err}`)); });
  });
}

function stopServer(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) { resolve(proc.exitCode); return; }
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    proc.once('exit', (code, sig) => { clearTimeout(t); resolve(code ?? sig); });
    proc.kill('SIGTERM');
  });
}

async function launch(tmp, name, options) {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-profile-`));
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, acceptDownloads: true, ...options,
    args: [...ARGS, `--ignore-certificate-errors-spki-list=${tls.spki}`],
  });
}

// The first API call of a new tab is answered 401: the key dialog asks, the
// key goes into the tab's sessionStorage and every later call carries it.
async function enterKey(p, { cancelFirst = false } = {}) {
  await p.waitForSelector('#key-dialog[open]', { timeout: 15000 });
  if (cancelFirst) {
    // Cancelled: the dialog stays closed (polling does not reopen it) until the Key button is used.
    await p.click('#key-cancel');
    await p.waitForFunction(() => !document.getElementById('key-dialog').open);
    await p.waitForTimeout(3500); // longer than the model list's retry
    assert.equal(await p.evaluate(() => document.getElementById('key-dialog').open), false);
    await p.click('#key-open');
    await p.waitForSelector('#key-dialog[open]');
  }
  assert.match(await p.textContent('#key-why'), /API key/);
  await p.fill('#key-input', 'too-short');
  await p.click('#key-form button[type=submit]');
  assert.match(await p.textContent('#key-error'), /16 to 256/);
  await p.fill('#key-input', API_KEY);
  await p.click('#key-form button[type=submit]');
  await p.waitForFunction(() => !document.getElementById('key-dialog').open);
  assert.equal(await p.evaluate(() => sessionStorage.getItem('pixmend.apiKey')), API_KEY);
}

function watchPage(page, errors) {
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Refused WebSocket connections after the server stops are expected noise.
    if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
}

// Centre of image pixel (x, y) of the editor's view, in page coordinates.
async function imageToPage(page, x, y) {
  return page.evaluate(([ix, iy]) => {
    const v = window.pixmend.editor.view;
    const r = v.canvas.getBoundingClientRect();
    const s = v.toScreen(ix, iy);
    return { x: r.left + s.x, y: r.top + s.y };
  }, [x, y]);
}

async function stroke(page, points) {
  const first = await imageToPage(page, ...points[0]);
  await page.mouse.move(first.x, first.y);
  await page.mouse.down();
  for (const p of points.slice(1)) {
    const q = await imageToPage(page, ...p);
    await page.mouse.move(q.x, q.y, { steps: 6 });
  }
  await page.mouse.up();
}

// RGBA of the image the editor shows now (its current bitmap).
function shownPixels(page) {
  return page.evaluate(() => {
    const e = window.pixmend.editor;
    const c = document.createElement('canvas');
    c.width = e.current.width; c.height = e.current.height;
    const g = c.getContext('2d');
    g.drawImage(e.current.bitmap, 0, 0);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data);
  });
}

const shot = (page, name) => page.screenshot({ path: path.join(OUT, name) });

// ------------------------------------------------------------------- tests
describe('pixmend browser UI', { timeout: 180000 }, () => {
  let tmp, server, ctx, page, photoPath, photo;
  let firstResult; // {bytes, rgba} of the first run
  const errors = [];

  before(async () => {
    assert.ok(fs.existsSync(PIXMEND), `no pixmend binary at ${PIXMEND}`);
    fs.mkdirSync(OUT, { recursive: true });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pixmend-e2e-'));
    photo = makePhoto();
    photoPath = path.join(tmp, 'photo.png');
    fs.writeFileSync(photoPath, photo);
    tls = makeTls(tmp);
    server = await startServer(path.join(tmp, 'data'), writeKeys(tmp));
    ctx = await launch(tmp, 'desktop', { viewport: { width: 1366, height: 768 } });
    // Records what the page hands to fetch() as multipart bodies (chromium does
    // not expose the file parts of a request to the test).
    await ctx.addInitScript(() => {
      const orig = window.fetch;
      window.__sent = [];
      window.fetch = async (input, init) => {
        if (init && init.body instanceof FormData) {
          const rec = {};
          for (const [k, v] of init.body.entries()) {
            rec[k] = v instanceof Blob ? { filename: v.name, type: v.type, bytes: Array.from(new Uint8Array(await v.arrayBuffer())) } : v;
          }
          window.__sent.push(rec);
        }
        return orig(input, init);
      };
    });
    page = ctx.pages()[0] || await ctx.newPage();
    watchPage(page, errors);
    await page.goto(server.base);
    await enterKey(page);
    await page.waitForFunction(() => document.querySelector('#ed-model option[value=patchmatch]'));
  });

  after(async () => {
    await ctx?.close().catch(() => {});
    if (server) await stopServer(server.proc);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('uses the API key over HTTPS: every call and the WebSocket carry it', async () => {
    assert.equal(await page.evaluate(() => window.isSecureContext && location.protocol), 'https:');
    await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'live', null, { timeout: 15000 });
    const probe = await page.evaluate(async () => {
      const bare = await fetch('/api/v1/queue');
      const keyed = await fetch('/api/v1/queue', { headers: { Authorization: `Bearer ${sessionStorage.getItem('pixmend.apiKey')}` } });
      return { bare: bare.status, www: bare.headers.get('WWW-Authenticate'), keyed: keyed.status, csp: keyed.headers.get('Content-Security-Policy') };
    });
    assert.equal(probe.bare, 401);
    assert.match(probe.www, /^Bearer/);
    assert.equal(probe.keyed, 200);
    assert.match(probe.csp, /default-src 'self'/);
    assert.equal(await page.isVisible('#key-open'), true);
  });

  it('lays out at 1366x768 with everything needed on screen', async () => {
    await shot(page, 'desktop-empty.png');
    const fits = await page.evaluate(() => {
      const se = document.scrollingElement;
      const inView = (id) => { const r = document.getElementById(id).getBoundingClientRect(); return r.width > 0 && r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth; };
      return { noScroll: se.scrollWidth <= innerWidth && se.scrollHeight <= innerHeight, run: inView('ed-run'), open: inView('ed-open'), canvas: inView('ed-canvas') };
    });
    assert.deepEqual(fits, { noScroll: true, run: true, open: true, canvas: true });
    // Every form control has an accessible name.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select')]
      .filter((el) => el.type !== 'file' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim() && !el.title)
      .map((el) => el.id || el.outerHTML.slice(0, 60)));
    assert.deepEqual(unnamed, []);
  });

  it('inpaints a stroke: only pixels inside the mask change; shows queue and progress; downloads', async () => {
    await page.setInputFiles('#ed-file', photoPath);
    await page.waitForSelector('#ed-badge:not([hidden])');
    assert.match(await page.textContent('#ed-badge'), /photo\.png · 320×240/);

    // Brush size with the keyboard: ] grows it from the default 15 px.
    assert.equal(await page.inputValue('#ed-size'), '15');
    await page.focus('#ed-canvas');
    for (let i = 0; i < 8; i++) await page.keyboard.press(']');
    const size = Number(await page.inputValue('#ed-size'));
    assert.ok(size >= 35 && size <= 60, `brush size after 8 × ] is ${size}`);
    assert.equal(await page.textContent('#ed-size-out'), `${size} px`);

    // A zigzag over the disk, then an eraser dab far away changes nothing outside.
    const { x: cx, y: cy, r } = DISK;
    await stroke(page, [[cx - r - 6, cy - r + 4], [cx + r + 6, cy - r + 4], [cx + r + 6, cy - 8], [cx - r - 6, cy - 8],
      [cx - r - 6, cy + 8], [cx + r + 6, cy + 8], [cx + r + 6, cy + r - 4], [cx - r - 6, cy + r - 4]]);
    assert.equal(await page.isEnabled('#ed-run'), true);
    await page.keyboard.press('e');
    assert.equal(await page.getAttribute('#ed-eraser', 'aria-pressed'), 'true');
    await stroke(page, [[40, 200], [60, 210]]);
    await page.keyboard.press('b');
    // Undo/redo of the eraser dab.
    await page.keyboard.press('Control+z');
    assert.equal(await page.evaluate(() => window.pixmend.editor.mask.strokes.length), 1);
    await page.keyboard.press('Control+Shift+z');
    assert.equal(await page.evaluate(() => window.pixmend.editor.mask.strokes.length), 2);
    await shot(page, 'desktop-painted.png');

    // Three jobs submitted directly go first (one runs, two wait), so the UI's
    // job waits behind at least one even on a slow machine.
    const fd = () => {
      const f = new FormData();
      f.append('image', new Blob([photo], { type: 'image/png' }), 'photo.png');
      f.append('mask', new Blob([encodePNG(W, H, 3, new Uint8Array(W * H * 3).fill(255, 0, W * 30 * 3))], { type: 'image/png' }), 'mask.png');
      return f;
    };
    for (let i = 0; i < 3; i++) {
      const res = await apiFetch(`${server.base}/api/v1/jobs`, { method: 'POST', body: fd() });
      assert.equal(res.status, 202, await res.text());
    }

    await page.evaluate(() => {
      window.__status = [];
      const el = document.getElementById('ed-status');
      new MutationObserver(() => window.__status.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
    });
    const resP = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/v1/jobs'));
    await page.keyboard.press('Enter');
    const res = await resP;
    assert.equal(res.status(), 202);
    const job = await res.json();
    const sent = await page.evaluate(() => window.__sent);
    assert.equal(sent.length, 1);
    const form = sent[0];
    assert.equal(form.task, 'inpaint');
    assert.equal(form.model, 'patchmatch');
    assert.equal(form.hd_strategy, 'auto');
    assert.equal(form.image.filename, 'photo.png');
    assert.ok(Buffer.from(form.image.bytes).equals(photo), 'the first run uploads the opened file unchanged');

    // While the job waits, intake pauses and resumes: the fake GPU's memory
    // goes to 95 % (above the 85 % mark), the server pauses and says so on
    // /ws, then to 20 % (below 75 %) and it resumes.
    await page.waitForFunction(() => /Queued/.test(document.getElementById('ed-status').textContent));
    if (nvmlScript) {
      setGpuUsed(0.95);
      await page.waitForFunction(() => /^Waiting for memory/.test(document.getElementById('ed-status').textContent),
        null, { timeout: 10000 });
      assert.equal(await page.textContent('#ed-status'), 'Waiting for memory — the job will start automatically');
      assert.equal(await page.getAttribute('#ed-status', 'class'), 'status waiting');
      const ready = await apiFetch(`${server.base}/readyz`);
      assert.equal(ready.status, 503, 'readyz answers 503 while intake is paused');
      await shot(page, 'desktop-waiting-for-memory.png');
      setGpuUsed(0.2);
      await page.waitForFunction(() => /^(Queued|Working|Done)/.test(document.getElementById('ed-status').textContent),
        null, { timeout: 10000 });
    } else {
      // No fake NVML built: hand the documented events (docs/ui.md) to the page's event bus, as /ws would.
      await page.evaluate(() => window.pixmend.events.dispatchEvent(new CustomEvent('paused', { detail: { type: 'paused' } })));
      assert.equal(await page.textContent('#ed-status'), 'Waiting for memory — the job will start automatically');
      await page.evaluate(() => window.pixmend.events.dispatchEvent(new CustomEvent('resumed', { detail: { type: 'resumed' } })));
      assert.match(await page.textContent('#ed-status'), /^(Queued|Working)/);
    }

    await page.waitForSelector('#ed-compare:not([hidden])', { timeout: 60000 });
    const statuses = await page.evaluate(() => window.__status);
    assert.ok(statuses.some((s) => /^Queued: [12] jobs? ahead$/.test(s)), `queue position not shown: ${JSON.stringify(statuses)}`);
    assert.ok(statuses.some((s) => /Working… \d+ %/.test(s)), `progress not shown: ${JSON.stringify(statuses)}`);
    assert.match(await page.textContent('#ed-status'), /^Done/);
    await shot(page, 'desktop-result.png');

    // Pixels: the mask the page sent, the photo, and the server's result.
    const mask = decodePNG(Buffer.from(form.mask.bytes));
    const input = decodePNG(photo);
    const resultBytes = Buffer.from(await (await apiFetch(`${server.base}/api/v1/jobs/${job.id}/result`)).arrayBuffer());
    const result = decodePNG(resultBytes);
    assert.deepEqual([mask.width, mask.height, result.width, result.height], [W, H, W, H]);
    let inMask = 0, changedIn = 0, changedOut = 0, redLeft = 0, x0 = W, x1 = 0, y0 = H, y1 = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = (y * W + x) * 4;
        const m = mask.rgba[i] > 0;
        const diff = input.rgba[i] !== result.rgba[i] || input.rgba[i + 1] !== result.rgba[i + 1] || input.rgba[i + 2] !== result.rgba[i + 2];
        if (m) {
          inMask++;
          if (diff) changedIn++;
          if (isRed(result.rgba, i)) redLeft++;
          x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        } else if (diff) changedOut++;
      }
    }
    assert.equal(changedOut, 0, 'pixels outside the mask changed');
    assert.ok(x0 <= cx - r && x1 >= cx + r && y0 <= cy - r && y1 >= cy + r, `mask box ${x0},${y0}-${x1},${y1} misses the disk`);
    assert.ok(x0 >= cx - r - 6 - size && x1 <= cx + r + 6 + size, `mask box ${x0}-${x1} wider than the strokes`);
    assert.ok(changedIn > inMask * 0.3, `only ${changedIn} of ${inMask} masked pixels changed`);
    assert.equal(redLeft, 0, 'red disk pixels remain inside the mask');

    // The canvas now shows exactly the result.
    const shown = await shownPixels(page);
    let mismatch = 0;
    for (let i = 0; i < shown.length; i += 4) if (shown[i] !== result.rgba[i] || shown[i + 1] !== result.rgba[i + 1] || shown[i + 2] !== result.rgba[i + 2]) mismatch++;
    assert.equal(mismatch, 0, 'the canvas does not show the result');

    // Hold Space: the original shows; release: the result again.
    await page.focus('#ed-canvas');
    await page.keyboard.down(' ');
    assert.equal(await page.evaluate(() => window.pixmend.editor.compare.holding), true);
    await shot(page, 'desktop-hold-original.png');
    await page.keyboard.up(' ');
    assert.equal(await page.evaluate(() => window.pixmend.editor.compare.holding), false);

    // Download: the original name and format, the result's bytes.
    const dlP = page.waitForEvent('download');
    await page.click('#ed-download');
    const dl = await dlP;
    assert.equal(dl.suggestedFilename(), 'photo.png');
    const saved = path.join(tmp, 'downloaded.png');
    await dl.saveAs(saved);
    assert.ok(fs.readFileSync(saved).equals(resultBytes), 'the download is not the result');

    firstResult = { bytes: resultBytes, rgba: result.rgba };

    // Iterative: undo brings the photo back with its strokes, redo the result.
    await page.keyboard.press('Control+z');
    assert.equal(await page.evaluate(() => window.pixmend.editor.current.original), true);
    assert.equal(await page.evaluate(() => window.pixmend.editor.mask.strokes.length), 2);
    await page.keyboard.press('Control+Shift+z');
    assert.equal(await page.evaluate(() => window.pixmend.editor.current.original), false);
    assert.equal(await page.evaluate(() => window.pixmend.editor.mask.strokes.length), 0);
  });

  it('keeps editing on the result, with a feathered edge', async () => {
    await page.focus('#ed-feather');
    for (let i = 0; i < 8; i++) await page.keyboard.press('ArrowRight');
    assert.equal(await page.textContent('#ed-feather-out'), '8 px');
    await page.focus('#ed-canvas');
    for (let i = 0; i < 4; i++) await page.keyboard.press('[');
    await stroke(page, [[60, 60], [110, 70]]);
    const hard = await page.evaluate(() => Array.from(window.pixmend.editor.mask.binary().data));
    await page.evaluate(() => { window.__sent.length = 0; });
    const resP = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/v1/jobs'));
    await page.click('#ed-run');
    const job = await (await resP).json();
    await page.waitForFunction(() => /^Done/.test(document.getElementById('ed-status').textContent), null, { timeout: 60000 });
    const form = (await page.evaluate(() => window.__sent))[0];
    assert.ok(Buffer.from(form.image.bytes).equals(firstResult.bytes), 'the second run does not start from the first result');
    const sentMask = decodePNG(Buffer.from(form.mask.bytes));
    const result2 = decodePNG(Buffer.from(await (await apiFetch(`${server.base}/api/v1/jobs/${job.id}/result`)).arrayBuffer()));
    const shown = await shownPixels(page);
    let hardN = 0, ring = 0, bad = 0;
    const prev = firstResult.rgba;
    for (let i = 0; i < W * H; i++) {
      const sent = sentMask.rgba[i * 4] > 0;
      if (hard[i]) assert.ok(sent, 'a painted pixel was not sent');
      if (hard[i]) hardN++;
      else if (sent) ring++;
      for (let k = 0; k < 3; k++) {
        const j = i * 4 + k;
        if (!sent && (shown[j] !== prev[j] || result2.rgba[j] !== prev[j])) bad++;
        if (hard[i] && shown[j] !== result2.rgba[j]) bad++;
        if (sent && !hard[i] && (shown[j] < Math.min(prev[j], result2.rgba[j]) - 1 || shown[j] > Math.max(prev[j], result2.rgba[j]) + 1)) bad++;
      }
    }
    assert.ok(hardN > 300, `stroke has ${hardN} pixels`);
    assert.ok(ring > hardN * 0.3, `feathering widened the mask by only ${ring} pixels`);
    assert.equal(bad, 0, 'pixels outside the feathered blend');
    await shot(page, 'desktop-feathered.png');
    // Back to a hard edge for what follows.
    await page.focus('#ed-feather');
    await page.keyboard.press('Home');
  });

  it('opens photos by drag-and-drop and paste, and zooms', async () => {
    const b64 = photo.toString('base64');
    for (const how of ['drop', 'paste']) {
      await page.evaluate(([data, kind]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], `${kind}.png`, { type: 'image/png' }));
        if (kind === 'drop') document.getElementById('ed-stage').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        else document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      }, [b64, how]);
      await page.waitForFunction((k) => document.getElementById('ed-badge').textContent.startsWith(`${k}.png`), how);
      assert.equal(await page.evaluate(() => window.pixmend.editor.undoStack.length), 0);
    }
    await page.focus('#ed-canvas');
    await page.keyboard.press('1');
    assert.equal(await page.textContent('#ed-zoom'), '100%');
    const c = await page.locator('#ed-canvas').boundingBox();
    await page.mouse.move(c.x + c.width / 2, c.y + c.height / 2);
    await page.mouse.wheel(0, -400);
    const z = await page.evaluate(() => window.pixmend.editor.view.zoom);
    assert.ok(z > 2, `wheel zoom gave ${z}`);
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('0');
    assert.equal(await page.textContent('#ed-zoom'), '100%'); // a 320x240 photo fits at 100 %
  });

  it('cancels a job with Esc', async () => {
    await page.focus('#ed-canvas');
    await stroke(page, [[100, 100], [140, 110]]);
    const resP = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/v1/jobs'));
    await page.keyboard.press('Enter');
    const job = await (await resP).json();
    await page.waitForFunction(() => /^(Queued|Working)/.test(document.getElementById('ed-status').textContent));
    const delP = page.waitForResponse((r) => r.request().method() === 'DELETE');
    await page.keyboard.press('Escape');
    assert.equal((await delP).status(), 202);
    await page.waitForSelector('#ed-run:not([hidden])');
    assert.equal(await page.isHidden('#ed-job'), true);
    assert.equal(await page.isHidden('#ed-error'), true);
    let state = '';
    for (let i = 0; i < 50 && state !== 'cancelled'; i++) {
      state = (await (await apiFetch(`${server.base}/api/v1/jobs/${job.id}`)).json()).state;
      if (state !== 'cancelled') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(state, 'cancelled');
    // The strokes are still there to run again.
    assert.equal(await page.evaluate(() => window.pixmend.editor.mask.strokes.length), 1);
  });

  it('shows the server\'s error message in words', async () => {
    const big = path.join(tmp, 'big.png');
    fs.writeFileSync(big, makePhoto(400, 300)); // 120 000 px > --max-pixels 100 000
    await page.setInputFiles('#ed-file', big);
    await page.waitForFunction(() => window.pixmend.editor.current && window.pixmend.editor.current.width === 400);
    await stroke(page, [[150, 150], [220, 160]]);
    const resP = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/v1/jobs'));
    await page.click('#ed-run');
    const res = await resP;
    assert.equal(res.status(), 413);
    const body = await res.json();
    await page.waitForSelector('#ed-error:not([hidden])');
    assert.equal(await page.textContent('#ed-error'), body.error.message);
    assert.match(body.error.message, /400x300/);
    await shot(page, 'desktop-error.png');
    // A file that is not a picture is refused in the page, in words.
    const txt = path.join(tmp, 'notes.txt');
    fs.writeFileSync(txt, 'not a picture');
    await page.setInputFiles('#ed-file', txt);
    await page.waitForFunction(() => /is not a PNG, JPEG or WebP/.test(document.getElementById('ed-error').textContent));
  });

  it('disables the Colorize tab with an explanation when no colorize model is configured', async () => {
    // The tab stays reachable (to read why it is off): keyboard through the tab list.
    await page.focus('#tab-editor');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-colorize');
    assert.equal(await page.isVisible('#panel-colorize'), true);
    assert.equal(await page.getAttribute('#tab-colorize', 'aria-disabled'), 'true');
    assert.equal(await page.isVisible('#co-unavailable'), true);
    assert.match(await page.textContent('#co-unavailable'), /no colorize model|none configured/i);
    assert.equal(await page.isDisabled('#co-run'), true);
    // The input sizes are the server's table (GET /api/v1/models), not copies in the page.
    const { limits } = await (await apiFetch(`${server.base}/api/v1/models`)).json();
    const size = limits.input_size;
    assert.deepEqual(await page.$eval('#co-custom', (c) => [c.min, c.max, c.step].map(Number)), [size.min, size.max, size.step]);
    const presets = await page.$$eval('.co-preset', (spans) => spans.map((s) => [s.dataset.preset, s.textContent]));
    assert.deepEqual(presets, Object.entries(size.presets).map(([k, v]) => [k, ` (${v})`]));
    await shot(page, 'desktop-colorize-off.png');
  });

  it('dashboard shows live numbers and the recent jobs', async () => {
    await page.keyboard.press('Alt+3');
    assert.equal(await page.getAttribute('#tab-dashboard', 'aria-selected'), 'true');
    await page.waitForFunction(() => Number(document.getElementById('panel-dashboard').dataset.samples) >= 2, null, { timeout: 15000 });
    const first = await page.textContent('#db-summary');
    const n0 = Number(await page.getAttribute('#panel-dashboard', 'data-samples'));
    await page.waitForFunction((n) => Number(document.getElementById('panel-dashboard').dataset.samples) >= n + 2, n0, { timeout: 15000 });
    assert.notEqual(await page.textContent('#db-summary'), first, 'the summary did not update');
    assert.match(await page.textContent('#val-mem'), /\d+(\.\d)? (KiB|MiB|GiB)/);
    assert.match(await page.textContent('#val-queue'), /\d+ queued/);
    assert.match(await page.textContent('#db-summary'), /up \d+ s/);
    const rows = await page.$$eval('#db-jobs tbody tr', (trs) => trs.map((tr) => tr.textContent));
    assert.ok(rows.some((t) => /done/.test(t) && /inpaint/.test(t)), `no finished job in the table: ${rows.join(' | ')}`);
    await shot(page, 'desktop-dashboard.png');
  });

  it('works on a phone-sized screen', async () => {
    const phone = await launch(tmp, 'phone', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      const p = phone.pages()[0] || await phone.newPage();
      watchPage(p, errors);
      await p.goto(server.base);
      await enterKey(p, { cancelFirst: true });
      await p.waitForFunction(() => document.querySelector('#ed-model option[value=patchmatch]'));
      await p.setInputFiles('#ed-file', photoPath);
      await p.waitForSelector('#ed-badge:not([hidden])');
      const layout = await p.evaluate(() => {
        const r = (id) => document.getElementById(id).getBoundingClientRect();
        return { overflowX: document.scrollingElement.scrollWidth > innerWidth, run: r('ed-run'), canvas: r('ed-canvas') };
      });
      assert.equal(layout.overflowX, false, 'the page scrolls sideways');
      assert.ok(layout.run.bottom <= 844 && layout.run.width > 100, `Run button at ${JSON.stringify(layout.run)}`);
      assert.ok(layout.canvas.height >= 300 && layout.canvas.width >= 360, `canvas ${layout.canvas.width}x${layout.canvas.height}`);
      // A finger stroke paints.
      const c = layout.canvas;
      await p.touchscreen.tap(c.x + c.width / 2, c.y + c.height / 2);
      assert.equal(await p.evaluate(() => window.pixmend.editor.mask.strokes.length), 1);
      await p.screenshot({ path: path.join(OUT, 'phone-editor.png') });
      await p.click('#tab-dashboard');
      await p.waitForFunction(() => Number(document.getElementById('panel-dashboard').dataset.samples) >= 2);
      const dashOverflow = await p.evaluate(() => document.scrollingElement.scrollWidth > innerWidth);
      assert.equal(dashOverflow, false, 'the dashboard scrolls sideways');
      await p.screenshot({ path: path.join(OUT, 'phone-dashboard.png') });
    } finally {
      await phone.close();
    }
  });

  it('keyboard shortcuts are listed in a dialog', async () => {
    await page.click('#tab-editor');
    await page.focus('#ed-canvas');
    await page.keyboard.press('Shift+?');
    assert.equal(await page.isVisible('#help'), true);
    assert.match(await page.textContent('#help'), /Undo/);
    await shot(page, 'desktop-shortcuts.png');
    await page.keyboard.press('Escape');
    assert.equal(await page.isVisible('#help'), false);
  });

  it('opens from the service worker cache when the server is gone', async () => {
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload();
    assert.ok(await page.evaluate(() => !!navigator.serviceWorker.controller), 'no service worker controls the page');
    const code = await stopServer(server.proc);
    assert.equal(code, 0, `pixmend serve did not exit cleanly on SIGTERM: ${server.stderr().slice(-2000)}`);
    await page.reload();
    await page.waitForSelector('#ed-run');
    await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'offline', null, { timeout: 20000 });
    await shot(page, 'desktop-offline.png');
    assert.deepEqual(errors, []);
  });
});
