// End-to-end test of the mask tools of the Remove tab: "Open mask…" (grey,
// RGBA, another size), "Save mask" (the file equals the painted mask), grow,
// shrink and invert with undo, and "Apply this mask to more photos…" (jobs
// with progress for each photo, results in each photo's format, one by one
// and as a zip). A real `pixmend serve` and Debian's chromium, as in
// e2e.test.mjs; environment: PIXMEND, PM_SOURCE_DIR, CHROMIUM, PM_E2E_OUT.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { encodePNG, decodePNG } from './png.mjs';
import { jpegQuality } from '../../web/js/jpegquality.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.PM_SOURCE_DIR || path.resolve(HERE, '../..');
const PIXMEND = process.env.PIXMEND || path.join(SRC, 'build/pixmend');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.PM_E2E_OUT || path.join(HERE, 'out');
const PY = '/usr/bin/python3';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const W = 320, H = 240;
// A photo with structure: a gradient sky, striped ground, a dark post at x 150..170, a red spot to remove.
function photoPixels(w = W, h = H, seed = 0) {
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      if (y < h / 2) { px[i] = 90 + (y >> 1); px[i + 1] = 140 + (y >> 2); px[i + 2] = 230; }
      else { px[i] = 70 + ((x + seed * 7) % 11) * 4; px[i + 1] = 120 + (x % 13); px[i + 2] = 50 + (y % 9); }
      if (x >= 150 && x < 170 && y > 60 && y < 200) { px[i] = 30; px[i + 1] = 25; px[i + 2] = 20; }
      if ((x - 70) ** 2 + (y - 55) ** 2 <= 144) { px[i] = 220; px[i + 1] = 30; px[i + 2] = 36; } // a red spot in RECT
    }
  }
  return px;
}
const RECT = { x0: 40, y0: 30, x1: 100, y1: 80 }; // exclusive ends, in photo pixels
const inRect = (x, y, r = RECT) => x >= r.x0 && x < r.x1 && y >= r.y0 && y < r.y1;

// A one-channel PNG of w x h, 255 inside `r` (in its own pixels).
function rectMaskPNG(w, h, r) {
  const px = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (inRect(x, y, r)) px[y * w + x] = 255;
  return encodePNG(w, h, 1, px);
}

// The definition of a disc grow/shrink, brute force, on a 0/1 array.
function bruteDilate(m, w, h, radius) {
  const grow = radius > 0, r = Math.abs(radius), out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let found = false;
      for (let dy = -r; dy <= r && !found; dy++) {
        for (let dx = -r; dx <= r && !found; dx++) {
          const X = x + dx, Y = y + dy;
          if (dx * dx + dy * dy > r * r || X < 0 || Y < 0 || X >= w || Y >= h) continue;
          found = (m[Y * w + X] !== 0) === grow;
        }
      }
      const set = m[y * w + x] !== 0;
      out[y * w + x] = (grow ? found : set && !found) ? 1 : 0;
    }
  }
  return out;
}

function startServer(dataDir) {
  return new Promise((resolve, reject) => {
    const proc = spawn(PIXMEND, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir,
      '--web-dir', path.join(SRC, 'web'), '--job-delay-ms', '400', '--log-level', 'warn', '--drain-seconds', '5'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`pixmend serve did not start:\n${out}\n${err}`)); }, 20000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /serving on http:\/\/([\d.]+):(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ proc, base: `http://127.0.0.1:${m[2]}` }); }
    });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`pixmend serve exited (${code}):\n${out}\n${err}`)); });
  });
}

function stopServer(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    proc.once('exit', () => { clearTimeout(t); resolve(); });
    proc.kill('SIGTERM');
  });
}

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

const maskBits = (page) => page.evaluate(() => Array.from(window.pixmend.editor.mask.binary().data));
const strokes = (page) => page.evaluate(() => window.pixmend.editor.mask.strokes.length);
const count = (a) => a.reduce((n, v) => n + v, 0);
const shot = (page, name) => page.screenshot({ path: path.join(OUT, name) });

async function download(page, click) {
  const dlP = page.waitForEvent('download');
  await click();
  const dl = await dlP;
  const file = path.join(os.tmpdir(), `pm-e2e-dl-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await dl.saveAs(file);
  const bytes = fs.readFileSync(file);
  fs.rmSync(file, { force: true });
  return { name: dl.suggestedFilename(), bytes };
}

describe('pixmend mask tools', { timeout: 240000 }, () => {
  let tmp, server, ctx, page;
  const errors = [];
  const files = {};

  before(async () => {
    assert.ok(fs.existsSync(PIXMEND), `no pixmend binary at ${PIXMEND}`);
    fs.mkdirSync(OUT, { recursive: true });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pixmend-e2e-mask-'));
    const put = (name, bytes) => { files[name] = path.join(tmp, name); fs.writeFileSync(files[name], bytes); };
    put('photo.png', encodePNG(W, H, 3, photoPixels()));
    put('photo2.png', encodePNG(W, H, 3, photoPixels(W, H, 1)));
    put('small.png', encodePNG(200, 150, 3, photoPixels(200, 150, 2)));
    put('half-mask.png', rectMaskPNG(W / 2, H / 2, { x0: 20, y0: 15, x1: 50, y1: 40 }));
    // RGBA: white everywhere, opaque only inside RECT: the alpha marks the area.
    const rgba = new Uint8Array(W * H * 4).fill(255);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (!inRect(x, y)) rgba[(y * W + x) * 4 + 3] = 0;
    put('alpha-mask.png', encodePNG(W, H, 4, rgba));
    put('notes.txt', Buffer.from('not a photo'));
    server = await startServer(path.join(tmp, 'data'));
    // A JPEG of the photo, made by the server itself (format=jpeg, an empty-ish mask corner).
    const fd = new FormData();
    fd.append('image', new Blob([fs.readFileSync(files['photo2.png'])], { type: 'image/png' }), 'p.png');
    const corner = new Uint8Array(W * H);
    corner[0] = 255;
    fd.append('mask', new Blob([encodePNG(W, H, 1, corner)], { type: 'image/png' }), 'm.png');
    fd.append('format', 'jpeg');
    fd.append('quality', '80');
    const res = await fetch(`${server.base}/api/v1/inpaint`, { method: 'POST', body: fd });
    const jpeg = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, jpeg.toString());
    put('photo3.jpg', jpeg);

    const dir = fs.mkdtempSync(path.join(tmp, 'profile-'));
    ctx = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM, headless: true, args: ARGS, acceptDownloads: true, viewport: { width: 1366, height: 768 },
    });
    page = ctx.pages()[0] || await ctx.newPage();
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
    });
    await page.goto(server.base);
    await page.waitForFunction(() => document.querySelector('#ed-model option[value=patchmatch]'));
    await page.setInputFiles('#ed-file', files['photo.png']);
    await page.waitForSelector('#ed-badge:not([hidden])');
  });

  after(async () => {
    await ctx?.close().catch(() => {});
    if (server) await stopServer(server.proc);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('lists the mask shortcuts in the help dialog and keeps Remove on screen', async () => {
    await page.keyboard.press('?');
    const help = await page.textContent('#help');
    for (const words of ['Open a mask image', 'Save the mask as a PNG', 'Grow / shrink the mask', 'Invert the mask']) {
      assert.ok(help.includes(words), `help lacks "${words}"`);
    }
    await page.keyboard.press('Escape');
    const inView = await page.evaluate(() => ['ed-run', 'ed-open'].map((id) => {
      const r = document.getElementById(id).getBoundingClientRect();
      return r.width > 0 && r.top >= 0 && r.bottom <= innerHeight;
    }));
    assert.deepEqual(inView, [true, true]);
    assert.equal(await page.evaluate(() => document.scrollingElement.scrollHeight <= innerHeight), true);
  });

  it('opens a mask of another size, scales it and says so; painting and undo work on it', async () => {
    await page.setInputFiles('#ed-mask-file', files['half-mask.png']);
    await page.waitForSelector('#ed-mask-note:not([hidden])');
    assert.match(await page.textContent('#ed-mask-note'), /160×120; it was scaled to the photo's 320×240/);
    const bits = await maskBits(page);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) assert.equal(bits[y * W + x], inRect(x, y) ? 1 : 0, `pixel (${x}, ${y})`);
    }
    assert.equal(await strokes(page), 1);
    await stroke(page, [[200, 150], [260, 160]]);
    assert.equal(await strokes(page), 2);
    assert.ok(count(await maskBits(page)) > count(bits));
    await page.keyboard.press('Control+z');
    assert.deepEqual(await maskBits(page), bits);
    await page.keyboard.press('Control+z');
    assert.equal(count(await maskBits(page)), 0, 'undo removes the opened mask');
    await page.keyboard.press('Control+Shift+z');
    assert.deepEqual(await maskBits(page), bits);
    await shot(page, 'mask-opened.png');
  });

  it('opens an RGBA mask whose alpha marks the area', async () => {
    await page.keyboard.press('Delete');
    await page.setInputFiles('#ed-mask-file', files['alpha-mask.png']);
    await page.waitForFunction(() => window.pixmend.editor.mask.strokes.length === 1);
    const bits = await maskBits(page);
    let wrong = 0;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (bits[y * W + x] !== (inRect(x, y) ? 1 : 0)) wrong++;
    assert.equal(wrong, 0);
    assert.doesNotMatch(await page.textContent('#ed-mask-note'), /scaled/);
  });

  it('grows, shrinks and inverts by a disc, each undoable', async () => {
    const rect = await maskBits(page);
    await page.fill('#ed-grow-px', '4');
    await page.click('#ed-grow');
    const grown = await maskBits(page);
    assert.deepEqual(grown, Array.from(bruteDilate(rect, W, H, 4)));
    assert.match(await page.textContent('#ed-mask-note'), /Grown by 4 px/);
    // Shift+G shrinks by the same amount: a rectangle grown and shrunk by a disc is the rectangle.
    await page.focus('#ed-canvas');
    await page.keyboard.press('Shift+G');
    assert.deepEqual(await maskBits(page), rect);
    await page.keyboard.press('Shift+G');
    assert.deepEqual(await maskBits(page), Array.from(bruteDilate(rect, W, H, -4)));
    await page.keyboard.press('i');
    const inv = await maskBits(page);
    assert.equal(count(inv), W * H - count(bruteDilate(rect, W, H, -4)));
    await page.keyboard.press('g'); // grow the inverted mask: the hole shrinks by 4 again
    assert.deepEqual(await maskBits(page), Array.from(bruteDilate(inv, W, H, 4)));
    for (const want of [inv, Array.from(bruteDilate(rect, W, H, -4)), rect, grown, rect]) {
      await page.keyboard.press('Control+z');
      assert.deepEqual(await maskBits(page), want);
    }
    await page.keyboard.press('Control+Shift+z');
    assert.deepEqual(await maskBits(page), grown);
    await page.keyboard.press('Control+z');
    await shot(page, 'mask-grown.png');
  });

  it('saves the mask as a PNG of the photo size that equals the painted mask', async () => {
    await stroke(page, [[220, 40], [300, 60], [240, 90]]);
    const bits = await maskBits(page);
    assert.ok(count(bits) > count(Array.from({ length: W * H }, (_, i) => (inRect(i % W, Math.floor(i / W)) ? 1 : 0))));
    await page.focus('#ed-canvas');
    const { name, bytes } = await download(page, () => page.keyboard.press('Shift+S'));
    assert.equal(name, 'photo-mask.png');
    const png = decodePNG(bytes);
    assert.equal(png.width, W);
    assert.equal(png.height, H);
    let wrong = 0;
    for (let i = 0; i < W * H; i++) {
      const v = png.rgba[i * 4];
      if (v !== (bits[i] ? 255 : 0) || png.rgba[i * 4 + 1] !== v || png.rgba[i * 4 + 3] !== 255) wrong++;
    }
    assert.equal(wrong, 0, 'the saved mask differs from the painted one');
    // And it opens back as the same mask.
    fs.writeFileSync(path.join(tmp, 'saved-mask.png'), bytes);
    await page.keyboard.press('Delete');
    await page.setInputFiles('#ed-mask-file', path.join(tmp, 'saved-mask.png'));
    await page.waitForFunction((n) => window.pixmend.editor.mask.strokes.length === n, 1);
    assert.deepEqual(await maskBits(page), bits);
  });

  it('applies the mask of a run to more photos: progress for each, their formats, one by one and as a zip', async () => {
    assert.equal(await page.isDisabled('#ed-batch'), true, 'no run yet: nothing to apply');
    const sentMask = await maskBits(page);
    await page.click('#ed-run');
    await page.waitForFunction(() => /^Done/.test(document.getElementById('ed-status').textContent), null, { timeout: 60000 });
    assert.equal(await page.isEnabled('#ed-batch'), true);

    const chooser = page.waitForEvent('filechooser');
    await page.click('#ed-batch');
    await (await chooser).setFiles([files['photo2.png'], files['photo3.jpg'], files['small.png'], files['notes.txt']]);
    await page.waitForSelector('#batch[open]');
    await page.waitForFunction(() => [...document.querySelectorAll('#batch-rows tr')].every((tr) => tr.dataset.state !== 'checking'));
    const states = () => page.$$eval('#batch-rows tr', (rows) => rows.map((tr) => [tr.querySelector('th').textContent, tr.dataset.state, tr.querySelector('.batch-state').textContent]));
    let rows = await states();
    assert.deepEqual(rows.map((r) => r[0]), ['photo2.png', 'photo3.jpg', 'small.png', 'notes.txt']);
    assert.match(rows[2][2], /^Skipped: the mask is 320×240/);
    assert.match(rows[3][2], /^Skipped: .*not a PNG, JPEG or WebP/);
    assert.equal(await page.textContent('#batch-start'), 'Start 2 jobs');
    await page.check('#batch-resize');
    assert.match((await states())[2][2], /will be scaled/);
    assert.equal(await page.textContent('#batch-start'), 'Start 3 jobs');
    await shot(page, 'batch-ready.png');

    await page.evaluate(() => {
      window.__rowTexts = [];
      const tbody = document.getElementById('batch-rows');
      new MutationObserver(() => {
        for (const tr of tbody.rows) window.__rowTexts.push([tr.rowIndex, tr.querySelector('.batch-state').textContent]);
      }).observe(tbody, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await page.click('#batch-start');
    await page.waitForFunction(() => [...document.querySelectorAll('#batch-rows tr')].slice(0, 3).every((tr) => tr.dataset.state === 'done'),
      null, { timeout: 90000 });
    await shot(page, 'batch-done.png');
    rows = await states();
    assert.equal(rows[3][1], 'invalid');
    const texts = await page.evaluate(() => window.__rowTexts);
    for (const row of [1, 2, 3]) {
      const seen = texts.filter(([i]) => i === row).map(([, t]) => t);
      assert.ok(seen.some((t) => /^(Queued|Working|Uploading)/.test(t)), `row ${row} showed no progress: ${JSON.stringify(seen)}`);
    }
    assert.match(await page.textContent('#batch-status'), /^3 done\./);

    // One by one: each photo's own name and format; outside the mask the photo is unchanged.
    const one = await download(page, () => page.click('#batch-rows tr:nth-child(1) button'));
    assert.equal(one.name, 'photo2.png');
    const res2 = decodePNG(one.bytes);
    const src2 = decodePNG(fs.readFileSync(files['photo2.png']));
    let changedOutside = 0, changedInside = 0;
    for (let i = 0; i < W * H; i++) {
      const same = [0, 1, 2].every((c) => res2.rgba[i * 4 + c] === src2.rgba[i * 4 + c]);
      if (!sentMask[i] && !same) changedOutside++;
      if (sentMask[i] && !same) changedInside++;
    }
    assert.equal(changedOutside, 0);
    assert.ok(changedInside > 0);
    const jpg = await download(page, () => page.click('#batch-rows tr:nth-child(2) button'));
    assert.equal(jpg.name, 'photo3.jpg');
    assert.deepEqual([...jpg.bytes.subarray(0, 3)], [0xff, 0xd8, 0xff], 'a JPEG comes back as a JPEG');
    const small = await download(page, () => page.click('#batch-rows tr:nth-child(3) button'));
    assert.equal(decodePNG(small.bytes).width, 200);

    // The zip: stored entries with their CRCs, read back by Python's zipfile.
    const zip = await download(page, () => page.click('#batch-zip'));
    assert.equal(zip.name, 'pixmend-results.zip');
    const zpath = path.join(tmp, 'results.zip');
    fs.writeFileSync(zpath, zip.bytes);
    const py = spawnSync(PY, ['-c', `
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
print(json.dumps([[i.filename, i.compress_type, len(z.read(i))] for i in z.infolist()]))
`, zpath], { encoding: 'utf8' });
    if (py.error || py.status !== 0) {
      assert.fail(`python3 zipfile rejected the archive: ${py.stderr || py.error}`);
    }
    const entries = JSON.parse(py.stdout);
    assert.deepEqual(entries.map((e) => e[0]), ['photo2.png', 'photo3.jpg', 'small.png']);
    assert.ok(entries.every((e) => e[1] === 0), 'entries are stored');
    assert.deepEqual(entries.map((e) => e[2]), [one.bytes.length, jpg.bytes.length, small.bytes.length]);
    const zb = zip.bytes;
    assert.ok(zb.includes(one.bytes) && zb.includes(jpg.bytes) && zb.includes(small.bytes), 'the zip holds the results as they are');

    await page.click('#batch-close');
    assert.equal(await page.evaluate(() => document.getElementById('batch').open), false);
    assert.deepEqual(errors, []);
  });

  it('gives a JPEG photo back as a JPEG at its own quality, also when the page blends the result', async () => {
    assert.equal(jpegQuality(fs.readFileSync(files['photo3.jpg'])), 80);
    await page.setInputFiles('#ed-file', files['photo3.jpg']);
    await page.waitForFunction(() => window.pixmend.editor.photo.name === 'photo3.jpg');
    assert.equal(await page.evaluate(() => window.pixmend.editor.photo.quality), 0.8);
    await page.evaluate(() => window.pixmend.editor.setFeather(0));
    await stroke(page, [[60, 55], [80, 55]]);
    await page.click('#ed-run');
    await page.waitForFunction(() => /^Done/.test(document.getElementById('ed-status').textContent), null, { timeout: 60000 });
    const plain = await download(page, () => page.click('#ed-download'));
    assert.equal(plain.name, 'photo3.jpg');
    assert.equal(jpegQuality(plain.bytes), 80, 'the server keeps the quality');
    // Feathered: the page blends and encodes it, at the photo's quality too.
    await page.evaluate(() => window.pixmend.editor.setFeather(6));
    await stroke(page, [[200, 150], [230, 150]]);
    await page.click('#ed-run');
    await page.waitForFunction(() => /^Done/.test(document.getElementById('ed-status').textContent) &&
      window.pixmend.editor.current.blob === null, null, { timeout: 60000 });
    const blended = await download(page, () => page.click('#ed-download'));
    assert.equal(blended.name, 'photo3.jpg');
    assert.equal(jpegQuality(blended.bytes), 80, 'the page encodes at the photo\'s quality');
    await page.evaluate(() => window.pixmend.editor.setFeather(0));
    assert.deepEqual(errors, []);
  });
});
