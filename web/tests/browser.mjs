// Drives headless Chromium (Debian's, through playwright-core) against a callvault server for the
// Rust tests in crates/callvault/tests/browser.rs. Usage:
//   node browser.mjs <base url> <scenario> <artifact dir> [fake audio wav]
// Scenarios: product (a server without test hooks: sign up; window.cv must not exist);
// video-call (two pages call each other with video; $CV_QUERY adds a query such as
// transform=streams to both pages), tamper (the callee's keys are corrupted), call-rust <peer display name> (one page calls a Rust client by name after connecting
// with the invite in $CALLVAULT_INVITE), messages (two pages exchange messages and see receipts
// and a delete for both; then one writes to a Rust client connected with $CALLVAULT_INVITE and
// shows its answer), keyfile (a key file `callvault id export` wrote, $CALLVAULT_KEYFILE under
// $CALLVAULT_PASSPHRASE, imports; storage holds no raw key; a reload asks for the passphrase; the
// backups of it and of an identity made in the browser are saved for the CLI to import),
// waiting (a second call during a call: declined, then taken), devices (choose and change
// camera), reconnect (Bob through a proxy that
// cuts his app connection during a call, then for 4 s while Alice hangs up), screens (axe-core,
// a phone's width, a screenshot of each screen; the manifest and service worker), first-frame (accept -> first decoded video frame, $CV_CALLS calls, each answered after ringing
// $CV_RING_MS). Prints
// one JSON object with what it saw.
import net from 'node:net'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { chromium } from 'playwright-core'

const [base, scenario, artifacts, fakeAudio] = process.argv.slice(2)
const args = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream',
  // Two fake cameras and microphones where a scenario asks ($CV_FAKE_DEVICES: device-count=2).
  process.env.CV_FAKE_DEVICES ? `--use-fake-device-for-media-stream=${process.env.CV_FAKE_DEVICES}` : '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
]
if (fakeAudio) args.push(`--use-file-for-fake-audio-capture=${fakeAudio}`)
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args })
const out = { scenario }
const logs = []
// What the pages' identities are sealed under.
const PASSPHRASE = 'a browser passphrase'

async function page(name, query = '', at = base) {
  const ctx = await browser.newContext({ permissions: ['camera', 'microphone', 'notifications'], viewport: { width: 1000, height: 720 } })
  const p = await ctx.newPage()
  p.on('console', (m) => logs.push(`${name}: ${m.text()}`))
  p.on('pageerror', (e) => logs.push(`${name} error: ${e.message}`))
  await p.goto(`${at}/${query}`)
  await p.fill('#name', name)
  await p.fill('#passphrase', PASSPHRASE)
  await p.click('#create-identity')
  await p.waitForFunction(() => window.cv.state === 'ready', null, { timeout: 30000 })
  return p
}

/** Saves the page's key backup to `file` in the artifacts; its path. */
async function backup (p, file) {
  const [download] = await Promise.all([p.waitForEvent('download'), p.click('#backup-btn')])
  const path = `${artifacts}/${file}`
  await download.saveAs(path)
  return path
}

const state = (p) => p.evaluate(() => window.cv.state)
const waitState = (p, s, timeout = 30000) => p.waitForFunction((s) => window.cv.state === s, s, { timeout })

async function connectPages(a, b) {
  await a.click('#invite-btn')
  await a.waitForFunction(() => !!window.cv.inviteToken, null, { timeout: 10000 })
  const token = await a.evaluate(() => window.cv.inviteToken)
  await b.fill('#connect-token', token)
  await b.click('#connect-btn')
  await b.waitForSelector('.call-video', { timeout: 10000 })
  await a.waitForSelector('.call-video', { timeout: 10000 })
}

/** `a` calls `b` (the button `which`), `b` answers; both in the call. */
async function callAndAnswer (a, b, which) {
  await a.click(which)
  await waitState(b, 'incoming call')
  await b.click('#accept')
  await waitState(a, 'in call')
  await waitState(b, 'in call')
}

async function sample(p, seconds) {
  const first = await p.evaluate(() => window.cv.stats())
  await p.waitForTimeout(seconds * 1000)
  const last = await p.evaluate(() => window.cv.stats())
  const e2ee = await p.evaluate(() => ({ ...window.cv.e2ee, decryptState: window.cv.decryptState, sas: window.cv.sas, state: window.cv.state, decryptText: document.getElementById('decrypt').textContent, path: window.cv.transformPath }))
  return { first, last, e2ee }
}

try {
  if (scenario === 'video-call' || scenario === 'tamper') {
    const q = process.env.CV_QUERY || ''
    const a = await page('Alice', q ? `?${q}` : '')
    const b = await page('Bob', scenario === 'tamper' ? `?tamper=1${q ? '&' + q : ''}` : (q ? `?${q}` : ''))
    await connectPages(a, b)
    // Bob's tab is in the background when the call comes: it rings and shows a notification.
    await b.evaluate(() => Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' }))
    await a.click('.call-video')
    await waitState(b, 'incoming call')
    out.bobRinging = await b.evaluate(() => ({ ringing: window.cv.ringing, notifications: window.cv.notifications }))
    await b.evaluate(() => Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' }))
    await b.click('#accept')
    if (scenario === 'video-call') {
      await waitState(a, 'in call')
      await waitState(b, 'in call')
    } else {
      await a.waitForFunction(() => window.cv.e2ee.encrypted > 50, null, { timeout: 30000 })
    }
    await a.waitForTimeout(1500)
    const [sa, sb] = await Promise.all([sample(a, 4), sample(b, 4)])
    out.alice = sa
    out.bob = sb
    out.bobRingingInCall = await b.evaluate(() => window.cv.ringing)
    out.aliceQuality = await a.evaluate(() => ({ ...window.cv.quality, shown: document.getElementById('quality').textContent }))
    await a.screenshot({ path: `${artifacts}/call-${scenario}-alice.png` })
    await b.screenshot({ path: `${artifacts}/call-${scenario}-bob.png` })
    // Mute and camera off act on the local tracks (the peer receives silence and black frames).
    await a.click('#mute')
    await a.click('#camera')
    out.aliceControls = await a.evaluate(() => ({
      audio: window.cv.call.local.getAudioTracks()[0].enabled,
      video: window.cv.call.local.getVideoTracks()[0].enabled,
      mute: document.getElementById('mute').textContent,
      camera: document.getElementById('camera').textContent,
    }))
    await a.click('#hangup')
    await b.waitForFunction(() => window.cv.state.startsWith('call '), null, { timeout: 15000 })
    out.bobAfterHangup = await state(b)
    // The call is in both histories, from the vaults.
    await b.click('#history-btn')
    await b.waitForFunction(() => window.cv.history?.length === 1, null, { timeout: 10000 })
    out.bobHistory = await b.evaluate(() => window.cv.history.map((r) => [r.direction, r.call_type, r.status]))
    out.bobHistoryText = await b.textContent('#history-list')
  } else if (scenario === 'call-rust') {
    const a = await page('Alice')
    const token = process.env.CALLVAULT_INVITE
    await a.fill('#connect-token', token)
    await a.click('#connect-btn')
    await a.waitForSelector('.call-audio', { timeout: 10000 })
    await a.click('.call-audio')
    await waitState(a, 'in call', 40000)
    await a.waitForTimeout(1500)
    out.alice = await sample(a, 4)
    await a.screenshot({ path: `${artifacts}/call-rust-alice.png` })
    await a.click('#hangup')
  } else if (scenario === 'messages') {
    const a = await page('Alice')
    const b = await page('Bob')
    await connectPages(a, b)
    const chat = (p) => p.evaluate(() => window.cv.chat)
    const send = async (p, text) => {
      await p.fill('#chat-text', text)
      await p.click('#chat-send')
      await p.waitForFunction((t) => window.cv.chat?.messages.some((m) => m.outgoing && m.text === t), text, { timeout: 10000 })
    }
    await a.click('.open-chat')
    await send(a, 'Hello Bob 👋 — this stays between us')
    // Bob, chat closed: the connection shows one new message; opening it shows the text.
    await b.waitForFunction(() => document.querySelector('.open-chat')?.textContent.includes('1 new'), null, { timeout: 10000 })
    out.bobBadge = await b.textContent('.open-chat')
    await b.screenshot({ path: `${artifacts}/messages-bob-new.png` })
    await b.click('.open-chat')
    await b.waitForFunction(() => window.cv.chat?.messages.length === 1, null, { timeout: 10000 })
    // Bob showed it: Alice's message reads as read.
    await a.waitForFunction(() => window.cv.chat?.messages[0]?.status === 'read', null, { timeout: 10000 })
    await send(b, 'Hi Alice! Got it.')
    await a.waitForFunction(() => window.cv.chat?.messages.length === 2, null, { timeout: 10000 })
    out.aliceChat = await chat(a)
    out.bobChat = await chat(b)
    await a.screenshot({ path: `${artifacts}/messages-alice.png` })
    await b.screenshot({ path: `${artifacts}/messages-bob.png` })
    // Delete for both: Alice's message goes from both pages.
    await a.click('#chat-messages li.mine .delete-both')
    await b.waitForFunction(() => window.cv.chat?.messages.length === 1, null, { timeout: 10000 })
    out.bobAfterDelete = await chat(b)
    await a.click('#chat-close')
    // A Rust client: Alice connects with its invite and writes; it answers.
    const token = process.env.CALLVAULT_INVITE
    if (token) {
      await a.fill('#connect-token', token)
      await a.click('#connect-btn')
      await a.waitForFunction(() => document.querySelectorAll('.open-chat').length === 2, null, { timeout: 10000 })
      await a.click('.open-chat[data-guid]:not([data-guid="' + (await b.evaluate(() => window.cv.guid)) + '"])')
      await send(a, 'hello, Rust client')
      await a.waitForFunction(() => window.cv.chat?.messages.some((m) => !m.outgoing), null, { timeout: 30000 })
      out.aliceRustChat = await chat(a)
      await a.screenshot({ path: `${artifacts}/messages-alice-rust.png` })
      // Revoking the Rust client: its entry says so and offers no call or message.
      a.once('dialog', (d) => d.accept())
      const rusty = await a.evaluate(() => window.cv.connections.find((c) => c.display_name === 'Rusty').guid)
      await a.click(`#connections li[data-guid="${rusty}"] .revoke`)
      await a.waitForSelector(`#connections li.revoked[data-guid="${rusty}"]`, { timeout: 10000 })
      out.aliceAfterRevoke = await a.evaluate(() => window.cv.connections.map((c) => [c.display_name, c.state]))
      out.revokedButtons = await a.locator(`#connections li[data-guid="${rusty}"] button`).count()
    }
    // No call yet: the history says so.
    await b.click('#history-btn')
    await b.waitForFunction(() => Array.isArray(window.cv.history), null, { timeout: 10000 })
    out.bobHistory = await b.textContent('#history-list')
  } else if (scenario === 'keyfile') {
    const ctx = await browser.newContext({ viewport: { width: 1000, height: 720 } })
    const p = await ctx.newPage()
    p.on('console', (m) => logs.push(`keyfile: ${m.text()}`))
    p.on('pageerror', (e) => logs.push(`keyfile error: ${e.message}`))
    await p.goto(`${base}/`)
    await p.fill('#name', 'Erin')
    await p.fill('#passphrase', process.env.CALLVAULT_PASSPHRASE)
    await p.setInputFiles('#import-file', process.env.CALLVAULT_KEYFILE)
    await p.screenshot({ path: `${artifacts}/keyfile-import.png` })
    await p.click('#create-identity')
    await waitState(p, 'ready')
    out.imported = await p.evaluate(() => window.cv.guid)
    out.storage = await p.evaluate(() => Object.fromEntries(Object.entries(localStorage)))
    out.stored_file_hex = await p.evaluate(() => Array.from(atob(localStorage.getItem('callvault.keyfile')), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(''))
    // Reloaded: locked until the passphrase opens the file; a wrong one is refused.
    await p.reload()
    await waitState(p, 'locked')
    await p.fill('#unlock-passphrase', 'not the passphrase')
    await p.click('#unlock')
    await p.waitForFunction(() => (window.cv.lastError ?? '').length > 0, null, { timeout: 30000 })
    out.wrong = await p.evaluate(() => window.cv.lastError)
    out.after_wrong = await state(p)
    await p.screenshot({ path: `${artifacts}/keyfile-wrong-passphrase.png` })
    await p.fill('#unlock-passphrase', process.env.CALLVAULT_PASSPHRASE)
    await p.click('#unlock')
    await waitState(p, 'ready')
    out.unlocked = await p.evaluate(() => window.cv.guid)
    out.backup_of_imported = await backup(p, 'keyfile-imported-backup.cvkey')
    // An identity made in the browser: its backup is for the CLI to import.
    const q = await page('Fay')
    out.made = await q.evaluate(() => window.cv.guid)
    out.made_storage = await q.evaluate(() => Object.fromEntries(Object.entries(localStorage)))
    out.backup_of_made = await backup(q, 'keyfile-made-backup.cvkey')
    // Restored in a second browser profile from that backup: the same identity.
    const r = await (await browser.newContext({ viewport: { width: 1000, height: 720 } })).newPage()
    await r.goto(`${base}/`)
    await r.fill('#name', 'Fay')
    await r.fill('#passphrase', PASSPHRASE)
    await r.setInputFiles('#import-file', out.backup_of_made)
    await r.click('#create-identity')
    await waitState(r, 'ready')
    out.restored = await r.evaluate(() => window.cv.guid)
    out.restored_storage_keys = await r.evaluate(() => Object.keys(localStorage).sort())
    out.passphrase = PASSPHRASE
    await q.screenshot({ path: `${artifacts}/keyfile-signed-in.png` })
  } else if (scenario === 'waiting') {
    // Bob talks to Alice; Carol calls him: a waiting call he declines, then one he takes (his call
    // with Alice ends for it).
    const a = await page('Alice')
    const b = await page('Bob')
    const c = await page('Carol')
    await connectPages(a, b)
    await connectPages(c, b)
    await callAndAnswer(a, b, '.call-audio')
    await c.click('.call-audio')
    await b.waitForFunction(() => !!window.cv.waiting, null, { timeout: 15000 })
    out.bobWaiting = await b.evaluate(() => ({
      state: window.cv.state,
      heading: document.querySelector('#incoming h2').textContent,
      accept: document.getElementById('accept').textContent,
      reject: document.getElementById('reject').textContent,
      shown: getComputedStyle(document.getElementById('incoming')).display !== 'none',
    }))
    await b.screenshot({ path: `${artifacts}/waiting-call.png` })
    await b.click('#reject')
    await c.waitForFunction(() => window.cv.state.startsWith('call '), null, { timeout: 15000 })
    out.carolAfterDecline = await state(c)
    out.bobAfterDecline = await b.evaluate(() => ({ state: window.cv.state, waiting: window.cv.waiting, shown: getComputedStyle(document.getElementById('incoming')).display !== 'none' }))
    out.aliceAfterDecline = await state(a)
    // Carol again; this time Bob takes it.
    await c.click('.call-audio')
    await b.waitForFunction(() => !!window.cv.waiting, null, { timeout: 15000 })
    await b.click('#accept')
    await a.waitForFunction(() => window.cv.state.startsWith('call '), null, { timeout: 15000 })
    out.aliceAfterTaken = await state(a)
    await waitState(c, 'in call')
    await waitState(b, 'in call')
    out.bobPeer = await b.evaluate(() => window.cv.call.peerName)
    await b.waitForFunction(() => window.cv.e2ee.decrypted > 20, null, { timeout: 15000 })
    out.bobSas = await b.evaluate(() => window.cv.sas)
    out.carolSas = await c.evaluate(() => window.cv.sas)
    await b.click('#hangup')
    // Carol once more, giving up before Bob answers: a missed call, marked in his history.
    await waitState(c, 'call ended')
    await c.click('.call-audio')
    await waitState(b, 'incoming call')
    await c.click('#hangup')
    await b.waitForFunction(() => window.cv.state === 'ready' && !window.cv.incoming, null, { timeout: 15000 })
    await b.click('#history-btn')
    await b.waitForFunction(() => window.cv.history?.length === 4, null, { timeout: 10000 })
    out.bobMissedMarked = await b.evaluate(() => Array.from(document.querySelectorAll('#history-list li.missed'), (li) => li.textContent))
    out.bobHistory = await b.evaluate(() => window.cv.history.map((r) => [r.direction, r.status, r.end_reason ?? null]))
  } else if (scenario === 'reconnect') {
    // Bob reaches the server through the test kit's proxy ($CV_PROXY_BASE; cut through
    // $CV_PROXY_CONTROL); Alice directly. Cut during a call, the call goes on and Bob's app
    // connects again; cut for longer while Alice hangs up, Bob's app learns it from his vault.
    const cut = (ms) => new Promise((resolve, reject) => {
      const c = net.connect(Number(process.env.CV_PROXY_CONTROL), '127.0.0.1', () => c.write(`cut ${ms}\n`))
      c.on('data', (d) => { resolve(d.toString().trim()); c.end() })
      c.on('error', reject)
    })
    const a = await page('Alice')
    const b = await page('Bob', '', process.env.CV_PROXY_BASE)
    await connectPages(a, b)
    await callAndAnswer(a, b, '.call-video')
    await b.waitForFunction(() => window.cv.e2ee.decrypted > 30, null, { timeout: 15000 })
    const frames = async () => (await b.evaluate(() => window.cv.stats())).video?.framesDecoded ?? 0
    out.cut1 = await cut(0)
    await b.waitForFunction(() => window.cv.links.includes('reconnecting') && window.cv.link === 'online', null, { timeout: 15000 })
    const f0 = await frames()
    await b.waitForTimeout(2000)
    out.afterReconnect = { state: await state(b), framesGained: (await frames()) - f0, links: await b.evaluate(() => window.cv.links) }
    await b.screenshot({ path: `${artifacts}/reconnect-in-call-bob.png` })
    // Alice's network changes: her call restarts ICE (new credentials, through both vaults) and
    // goes on.
    const ufrag = (p) => p.evaluate(() => window.cv.call.pc.remoteDescription.sdp.match(/a=ice-ufrag:(\S+)/)[1])
    const bobSawBefore = await ufrag(b)
    await a.evaluate(() => window.dispatchEvent(new Event('online')))
    await b.waitForFunction((u) => !window.cv.call.pc.remoteDescription.sdp.includes(`a=ice-ufrag:${u}`), bobSawBefore, { timeout: 15000 })
    await a.waitForFunction(() => window.cv.call.pc.signalingState === 'stable' && window.cv.call.pc.connectionState === 'connected', null, { timeout: 15000 })
    const f1 = await frames()
    await b.waitForTimeout(2000)
    out.afterRestart = { restarts: (await a.evaluate(() => window.cv.stats())).restarts, ufragChanged: (await ufrag(b)) !== bobSawBefore, framesGained: (await frames()) - f1, state: await state(b) }
    // An outage of 4 s; Alice hangs up during it. Bob's vault hears it; his app, offline, not.
    out.cut2 = await cut(4000)
    await b.waitForFunction(() => window.cv.link === 'reconnecting', null, { timeout: 5000 })
    await b.screenshot({ path: `${artifacts}/reconnect-offline-bob.png` })
    out.offlineText = await b.textContent('#link')
    await a.click('#hangup')
    out.bobDuringOutage = await state(b)
    await b.waitForFunction(() => window.cv.state.startsWith('call '), null, { timeout: 30000 })
    out.bobAfterOutage = { state: await state(b), link: await b.evaluate(() => window.cv.link), links: await b.evaluate(() => window.cv.links) }
  } else if (scenario === 'devices') {
    // Fake cameras ($CV_FAKE_DEVICES=device-count=3): Alice previews and picks one before a call,
    // then changes camera during a video call with Bob; Bob keeps decoding her video. (Chromium's
    // second fake camera is a Y16 depth camera that no encoder takes: the first and the last.)
    const a = await page('Alice')
    const b = await page('Bob')
    await connectPages(a, b)
    await a.click('#devices-btn')
    await a.waitForFunction(() => window.cv.devices?.lists.videoinput.length === 3, null, { timeout: 10000 })
    out.lists = await a.evaluate(() => window.cv.devices.lists)
    await a.waitForFunction(() => document.getElementById('preview').videoWidth > 0, null, { timeout: 10000 })
    out.previewLabel = await a.evaluate(() => document.getElementById('preview').srcObject.getVideoTracks()[0].label)
    await a.screenshot({ path: `${artifacts}/devices-preview.png` })
    const [first, other] = [out.lists.videoinput[0], out.lists.videoinput.at(-1)]
    await a.selectOption('#videoinput-select', first.id)
    await a.waitForFunction((l) => document.getElementById('preview').srcObject?.getVideoTracks()[0]?.label === l, first.label, { timeout: 10000 })
    await a.click('#devices-close')
    out.previewAfterClose = await a.evaluate(() => document.getElementById('preview').srcObject)
    await callAndAnswer(a, b, '.call-video')
    const sent = () => a.evaluate(() => window.cv.call.pc.getSenders().find((s) => s.track?.kind === 'video').track.label)
    out.sentBefore = await sent()
    await b.waitForFunction(() => window.cv.e2ee.decrypted > 30, null, { timeout: 15000 })
    await a.click('#call-devices')
    await a.selectOption('#videoinput-select', other.id)
    await a.waitForFunction((l) => window.cv.call.local.getVideoTracks()[0]?.label === l, other.label, { timeout: 10000 })
    out.sentAfter = await sent()
    out.chosenKept = await a.evaluate(() => JSON.parse(localStorage.getItem('callvault.devices')))
    const bob = async () => b.evaluate(async () => ({ frames: (await window.cv.stats()).video?.framesDecoded ?? 0, ...window.cv.e2ee }))
    const before = await bob()
    await b.waitForTimeout(2500)
    const after = await bob()
    out.bobAfterSwitch = { frames: after.frames - before.frames, decrypted: after.decrypted - before.decrypted, failed: after.failed }
    await a.screenshot({ path: `${artifacts}/devices-in-call.png` })
    await a.click('#hangup')
  } else if (scenario === 'screens') {
    // Every screen, on a desktop (Alice, 1000x720) and a phone (Bob, 390x844): axe-core finds no
    // serious or critical violation, the phone has no horizontal scroll, and a screenshot of
    // each is saved. Then: the manifest and the service worker.
    const axeSource = readFileSync(new URL('../node_modules/axe-core/axe.min.js', import.meta.url), 'utf8')
    out.screens = {}
    const look = async (p, who, name) => {
      if (!(await p.evaluate(() => typeof window.axe !== 'undefined'))) await p.evaluate(axeSource)
      const found = await p.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ['violations'] })
        return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
      })
      const width = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }))
      await p.screenshot({ path: `${artifacts}/screen-${name}-${who}.png`, fullPage: true })
      out.screens[`${name}/${who}`] = { violations: found, ...width }
    }
    const phone = { width: 390, height: 844 }
    const fresh = async (who, viewport) => {
      const ctx = await browser.newContext({ permissions: ['camera', 'microphone', 'notifications'], viewport })
      const p = await ctx.newPage()
      p.on('pageerror', (e) => logs.push(`${who} error: ${e.message}`))
      await p.goto(`${base}/`)
      await p.waitForFunction(() => document.body.dataset.state === 'signed out', null, { timeout: 10000 })
      return p
    }
    const a = await fresh('Alice', { width: 1000, height: 720 })
    const b = await fresh('Bob', phone)
    await look(a, 'desktop', 'sign-up')
    await look(b, 'phone', 'sign-up')
    // Alice signs up with the keyboard alone: type, Tab, type, Enter.
    await a.focus('#name')
    await a.keyboard.type('Alice')
    await a.keyboard.press('Tab')
    out.tabbedTo = await a.evaluate(() => document.activeElement.id)
    await a.keyboard.type(PASSPHRASE)
    await a.keyboard.press('Enter')
    await b.fill('#name', 'Bob')
    await b.fill('#passphrase', PASSPHRASE)
    await b.click('#create-identity')
    for (const p of [a, b]) await p.waitForFunction(() => window.cv?.state === 'ready', null, { timeout: 30000 })
    await connectPages(a, b)
    await look(a, 'desktop', 'connections')
    await look(b, 'phone', 'connections')
    for (const [p, who] of [[a, 'desktop'], [b, 'phone']]) {
      await p.click('.open-chat')
      await p.fill('#chat-text', `hello from the ${who}`)
      await p.click('#chat-send')
      await p.waitForFunction(() => window.cv.chat?.messages.length > 0, null, { timeout: 10000 })
      await look(p, who, 'messages')
      await p.click('#chat-close')
      await p.click('#history-btn')
      await p.waitForFunction(() => Array.isArray(window.cv.history), null, { timeout: 10000 })
      await p.click('#devices-btn')
      await p.waitForFunction(() => document.getElementById('preview').videoWidth > 0, null, { timeout: 10000 })
      await look(p, who, 'history-and-devices')
      await p.click('#devices-close')
    }
    await a.click('.call-video')
    await waitState(b, 'incoming call')
    await look(b, 'phone', 'incoming-call')
    await b.click('#accept')
    await waitState(a, 'in call')
    await waitState(b, 'in call')
    await a.waitForFunction(() => window.cv.quality?.level, null, { timeout: 10000 })
    for (const p of [a, b]) {
      await p.waitForFunction(() => document.getElementById('remote').videoWidth > 0 && document.getElementById('local').videoWidth > 0, null, { timeout: 10000 })
    }
    await a.waitForTimeout(500)
    await look(a, 'desktop', 'in-call')
    await look(b, 'phone', 'in-call')
    await a.click('#hangup')
    await b.reload()
    await waitState(b, 'locked')
    await look(b, 'phone', 'unlock')
    // Installable: the manifest, and the service worker that keeps the shell.
    out.manifest = await a.evaluate(async () => {
      const href = document.querySelector('link[rel=manifest]').href
      return (await fetch(href)).json()
    })
    out.worker = await a.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready
      return { scope: reg.scope, script: reg.active?.scriptURL ?? null, kept: (await (await caches.open('callvault-shell-v1')).keys()).length }
    })
    // Chromium's own verdict, in a profile on disk (a test context is incognito, never installable).
    const profile = mkdtempSync(`${tmpdir()}/cv-profile-`)
    const installed = await chromium.launchPersistentContext(profile, { executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args })
    const ip = installed.pages()[0] ?? await installed.newPage()
    await ip.goto(`${base}/`)
    await ip.evaluate(() => navigator.serviceWorker.ready)
    const cdp = await installed.newCDPSession(ip)
    out.installability = (await cdp.send('Page.getInstallabilityErrors')).installabilityErrors.map((e) => e.errorId)
    await installed.close()
    rmSync(profile, { recursive: true, force: true })
  } else if (scenario === 'first-frame') {
    // Accept -> first decoded video frame on each side, $CV_CALLS calls in a row (a benchmark:
    // crates/callvault/benches/first_frame.rs). Both pages share the browser's clock. First, the
    // page's load: a fresh profile until the sign-up form works (its WASM loaded), then again.
    const loadOnce = async (p) => {
      await p.goto(`${base}/`)
      await p.waitForFunction(() => document.body.dataset.state === 'signed out', null, { timeout: 30000 })
      return p.evaluate(() => {
        const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
        return {
          ready_ms: Math.round(performance.now()),
          files: entries.length,
          transfer_bytes: entries.reduce((n, e) => n + (e.transferSize || 0), 0),
          body_bytes: entries.reduce((n, e) => n + (e.encodedBodySize || 0), 0),
        }
      })
    }
    const fresh = await (await browser.newContext()).newPage()
    out.load = { first: await loadOnce(fresh), again: await loadOnce(fresh) }
    const a = await page('Alice')
    const b = await page('Bob')
    await connectPages(a, b)
    const firstFrame = (p) => p.evaluate(async () => {
      for (;;) {
        const s = await window.cv.stats()
        if ((s.video?.framesDecoded ?? 0) > 0) return { at: Date.now(), marks: s.marks }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })
    out.calls = []
    for (let i = 0; i < Number(process.env.CV_CALLS || 5); i++) {
      await a.click('.call-video')
      await waitState(b, 'incoming call')
      // A person takes a moment to answer ($CV_RING_MS, default 1 s).
      await b.waitForTimeout(Number(process.env.CV_RING_MS ?? 1000))
      const accepted = await b.evaluate(() => { document.getElementById('accept').click(); return Date.now() })
      const [bobAt, aliceAt] = await Promise.all([firstFrame(b), firstFrame(a)])
      const since = (marks) => Object.fromEntries(Object.entries(marks ?? {}).map(([k, t]) => [k, t - accepted]))
      out.calls.push({ callee_ms: bobAt.at - accepted, caller_ms: aliceAt.at - accepted, callee_steps: since(bobAt.marks), caller_steps: since(aliceAt.marks) })
      await a.click('#hangup')
      await b.waitForFunction(() => window.cv.state.startsWith('call '), null, { timeout: 15000 })
      await a.waitForTimeout(300)
    }
  } else if (scenario === 'product') {
    // A server without test hooks: the product as users get it signs up, and exposes nothing.
    const ctx = await browser.newContext({ viewport: { width: 1000, height: 720 } })
    const p = await ctx.newPage()
    p.on('pageerror', (e) => logs.push(`product error: ${e.message}`))
    p.on('console', (m) => { if (m.type() === 'error') logs.push(`product console error: ${m.text()}`) })
    await p.goto(`${base}/?tamper=1`)
    await p.fill('#name', 'Dana')
    await p.fill('#passphrase', PASSPHRASE)
    await p.click('#create-identity')
    await p.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 30000 })
    out.hooks = await p.evaluate(() => typeof window.cv)
    out.who = await p.textContent('#who')
    out.csp = (await (await p.request.get(`${base}/`)).headers())['content-security-policy'] ?? null
    await p.screenshot({ path: `${artifacts}/product-signed-in.png` })
  }
} catch (e) {
  out.error = String(e)
}
out.logs = logs.slice(-40)
await browser.close()
console.log(JSON.stringify(out))
