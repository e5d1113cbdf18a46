// Service worker: keeps the app shell (this folder's HTML, CSS, modules, icon)
// so the UI opens without the server. Network first, so a new version of the
// UI is picked up at once when the server is reachable; the cache answers only
// when the network fails. The API, the WebSocket and the metrics are never cached.

const CACHE = 'pixmend-shell-v2';
const SHELL = [
  './',
  'index.html',
  'app.css',
  'icon.svg',
  'manifest.json',
  'js/main.js',
  'js/api.js',
  'js/auth.js',
  'js/events.js',
  'js/jobs.js',
  'js/ui.js',
  'js/view.js',
  'js/mask.js',
  'js/compare.js',
  'js/photo.js',
  'js/editor.js',
  'js/colorize.js',
  'js/chart.js',
  'js/dashboard.js',
  'js/masktools.js',
  'js/batch.js',
  'js/zip.js',
  'js/jpegquality.js',
];
const NEVER = /^\/(api|ws|metrics|healthz|readyz)(\/|$)/;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((c) => c.addAll(SHELL.map((p) => new Request(p, { cache: 'reload' }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('pixmend-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || NEVER.test(url.pathname)) return;
  event.respondWith((async () => {
    try {
      const res = await fetch(req);
      if (res.ok && res.type === 'basic') {
        const copy = res.clone();
        caches.open(CACHE).then((c) => c.put(req, copy)).catch(() => {});
      }
      return res;
    } catch (err) {
      const hit = await caches.match(req, { ignoreSearch: true });
      if (hit) return hit;
      if (req.mode === 'navigate') {
        const shell = await caches.match('./') || await caches.match('index.html');
        if (shell) return shell;
      }
      throw err;
    }
  })());
});
