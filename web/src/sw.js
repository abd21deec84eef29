// The service worker: the app's shell (the page, its modules, styles, icons and the E2EE
// module) kept so that the app opens and installs like an app. Network first, so that an updated
// server's client is what runs; the kept copy only when the server is out of reach. The app
// connection (/app, a WebSocket), TURN credentials and anything not in the shell are never
// touched: they go to the network as they would without a worker.

const PREFIX = 'callvault-shell-'
const SHELL = `${PREFIX}v1`
const FILES = [
  '/', '/index.html', '/style.css', '/app.js', '/session.js', '/calls.js', '/quality.js', '/e2ee.js',
  '/views.js', '/keystore.js', '/identity.js', '/names.js', '/messages.js', '/ringer.js',
  '/devices.js', '/wasm.js', '/e2ee-worker.js', '/e2ee.wasm',
  '/manifest.webmanifest', '/icon-192.png', '/icon-512.png',
]

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith(PREFIX) && k !== SHELL).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()))
})

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url)
  if (e.request.method !== 'GET' || url.origin !== self.location.origin || !FILES.includes(url.pathname)) return
  // (`/test-hooks.js` is not in the shell: what a test server says is never kept.)
  e.respondWith(fetch(e.request).then((answer) => {
    if (answer.ok) {
      const copy = answer.clone()
      e.waitUntil(caches.open(SHELL).then((c) => c.put(url.pathname, copy)).catch(() => {}))
    }
    return answer
  }).catch(() => caches.match(url.pathname).then((kept) => kept ?? Response.error())))
})
