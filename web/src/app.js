// The callvault browser client: wires the identity (identity.js, keystore.js), the app connection
// (session.js), the call controller (calls.js), the E2EE worker (e2ee.js) and the views
// (views.js). Plain ES modules, served as they are by `callvault serve` (no build step).
import { AppSession, listConnections } from './session.js'
import { Calls } from './calls.js'
import { Conversations, statusText } from './messages.js'
import { E2ee } from './e2ee.js'
import {
  bytesToHex, generateSecretKey, initIdentity, nip44Decrypt, nip44Encrypt, openKeyFile, publicOf, sealKeyFile, signEvent,
} from './identity.js'
import { createIdentity, keyFileBytes, keyFileText, storedIdentity, unlockIdentity } from './keystore.js'
import { displayNameProblem } from './names.js'
import { makeView } from './views.js'
import { Ringer, systemNotification, webAudioRing } from './ringer.js'
import { Devices } from './devices.js'

const $ = (id) => document.getElementById(id)
// Test hooks (window.cv, ?tamper=1, ?transform=streams, ?relay=1) exist only when the server
// was started for tests (`test_hooks`): /test-hooks.js then says so.
const hooks = await import('/test-hooks.js').then((m) => m.testHooks === true, () => false)
const params = hooks ? new URLSearchParams(location.search) : new URLSearchParams()

const state = {
  state: 'signed out', guid: null, name: null, connections: [], incoming: null, call: null, sas: null,
  inviteToken: null, lastError: null, e2ee: { encrypted: 0, decrypted: 0, failed: 0 }, decryptState: 'ok',
}
if (hooks) window.cv = state
// An incoming call rings, and shows a system notification when the tab is hidden.
const ring = webAudioRing()
const ringer = new Ringer({
  audio: ring,
  notify: (title, body) => systemNotification(title, body),
  isHidden: () => document.visibilityState === 'hidden',
  state,
})
const view = makeView(state, { ringer })
// A call takes the camera: the devices panel's preview lets it go.
const showCall = view.showCall
view.showCall = (call) => { stopPreview(); showCall(call) }
const fail = (e) => view.fail(e instanceof Error ? e.message : String(e))

const devices = new Devices()
let identity = null
let session = null
let calls = null
let conversations = null
const e2ee = new E2ee({ preferStreams: params.get('transform') === 'streams', onStats: (s) => view.e2ee(s), onError: fail })
state.transformPath = e2ee.path

const b64url = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const now = () => Math.floor(Date.now() / 1000)

function showConnections () {
  view.connections(state.connections, (c, type) => calls.place(c, type).catch(fail), (c) => openChat(c).catch(fail),
    (guid) => conversations.of(guid).unread, (c) => revoke(c).catch(fail))
}

async function revoke (c) {
  if (!confirm(`Revoke ${c.display_name}? Neither of you can call or write to the other any more.`)) return
  const m = await session.request('connection.revoke', { peer_guid: c.guid })
  if (m.kind.endsWith('.error')) throw new Error(m.payload.message)
  if (chatWith?.guid === c.guid) { chatWith = null; showChat() }
  await refreshConnections()
}

async function showHistory () {
  const m = await session.request('history.list', { limit: 50 })
  if (m.kind.endsWith('.error')) throw new Error(m.payload.message)
  const nameOf = (guid) => state.connections.find((c) => c.guid === guid)?.display_name ?? `${guid.slice(0, 8)}…`
  view.history(m.payload.calls || [], nameOf)
}

// Back after the app connection was lost: the bus kept nothing meanwhile, so the vault says what
// became of the calls (its newest records) and who is connected.
async function resume () {
  const m = await session.request('history.list', { limit: 20 })
  if (m.kind.endsWith('.error')) throw new Error(m.payload.message)
  await refreshConnections()
  calls.resume(m.payload.calls || [], (guid) => state.connections.find((c) => c.guid === guid))
}

async function refreshConnections () {
  state.connections = await listConnections(session)
  showConnections()
}

// The open conversation, if any, redrawn whenever it changes; the peer's messages count as read
// while it is open and the tab is visible.
let chatWith = null
function showChat () {
  if (!chatWith) return view.chat(null, [], {})
  const messages = conversations.list(chatWith.guid).map((m) => ({ ...m, statusText: statusText(m) }))
  view.chat(chatWith, messages, {
    more: conversations.of(chatWith.guid).more,
    onOlder: () => conversations.load(chatWith.guid, true).catch(fail),
    onDelete: (m, forBoth) => conversations.remove(chatWith.guid, m.item, forBoth).catch(fail),
  })
  if (document.visibilityState === 'visible') conversations.markRead(chatWith.guid)
}
async function openChat (c) {
  chatWith = c
  await conversations.load(c.guid)
  showChat()
  $('chat-text').focus()
}

function makeInvite () {
  const body = { delegation: session.ready.delegation, display_name: identity.name, reach: 'local', nonce: bytesToHex(crypto.getRandomValues(new Uint8Array(16))), expires_at: now() + 86400 }
  const note = signEvent(identity.secret, { kind: 9471, created_at: now(), tags: [], content: JSON.stringify(body) })
  return 'cvinv1_' + b64url(JSON.stringify(note))
}

async function start () {
  state.guid = identity.guid
  state.name = identity.name
  view.signedIn(identity)
  view.state('connecting to server')
  session = new AppSession({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/app`,
    guid: identity.guid,
    name: identity.name,
    sign: (event) => signEvent(identity.secret, event),
    onMessage: (m) => {
      if (conversations.take(m)) return
      if (calls.onMessage(m)) return
      if (m.kind === 'connection.accepted') refreshConnections().catch(fail)
    },
    onError: fail,
    onOffline: () => view.link('reconnecting'),
    onReconnect: () => {
      view.link('online')
      // Back on what is likely another network: the call's media finds its way again too.
      resume().then(() => calls.networkChanged(), fail)
    },
  })
  calls = new Calls({
    session,
    e2ee,
    seal: (peerKey, text) => nip44Encrypt(identity.secret, peerKey, text),
    open: (peerKey, payload) => nip44Decrypt(identity.secret, peerKey, payload),
    guid: identity.guid,
    view,
    // Hide this device's addresses from the peer: media only through the TURN relay.
    relayOnly: () => params.get('relay') === '1' || $('relay-only').checked,
    tamper: params.get('tamper') === '1',
    devices,
  })
  conversations = new Conversations({
    session,
    seal: (peerKey, text) => nip44Encrypt(identity.secret, peerKey, text),
    open: (peerKey, payload) => nip44Decrypt(identity.secret, peerKey, payload),
    keyOf: (guid) => state.connections.find((c) => c.guid === guid)?.user_key,
    onChange: (guid) => {
      if (chatWith?.guid === guid) showChat()
      showConnections()
    },
  })
  if (hooks) state.stats = () => calls.stats()
  await session.connect()
  view.link('online')
  view.speaker(devices.of('audiooutput'))?.catch(() => devices.choose('audiooutput', null))
  view.state('ready')
  await refreshConnections()
}

const identityReady = initIdentity()
const ops = { publicOf, generateSecretKey, sealKeyFile, openKeyFile }

// Sealing and opening a key file take a moment (argon2id, 64 MiB): say so first.
const slowly = (what, f) => new Promise((resolve, reject) => {
  view.state(what)
  setTimeout(() => { try { resolve(f()) } catch (e) { reject(e) } }, 30)
})

// On the click that signs in: the ring's audio may sound later, and notifications are asked for.
function onSignInClick () {
  ring?.prepare()
  if (typeof Notification !== 'undefined' && Notification.permission === 'default') Notification.requestPermission().catch(() => {})
}

$('create-form').onsubmit = async (e) => {
  e.preventDefault()
  onSignInClick()
  const name = $('name').value || 'callvault user'
  const problem = displayNameProblem(name)
  if (problem) return fail(problem)
  const file = $('import-file').files[0]
  try {
    await identityReady
    const imported = file ? keyFileText(new Uint8Array(await file.arrayBuffer())) : null
    identity = await slowly(imported ? 'opening the key file' : 'sealing your key',
      () => createIdentity(localStorage, ops, name, $('passphrase').value, imported))
  } catch (err) {
    view.state('signed out')
    return fail(file ? `that key file does not open: ${err.message}` : err.message)
  }
  $('passphrase').value = ''
  start().catch(fail)
}
$('unlock-form').onsubmit = async (e) => {
  e.preventDefault()
  onSignInClick()
  try {
    await identityReady
    identity = await slowly('unlocking', () => unlockIdentity(localStorage, ops, $('unlock-passphrase').value))
  } catch (err) {
    view.state('locked')
    return fail(err.message)
  }
  $('unlock-passphrase').value = ''
  start().catch(fail)
}
$('backup-btn').onclick = () => {
  const url = URL.createObjectURL(new Blob([keyFileBytes(localStorage)], { type: 'application/octet-stream' }))
  const a = document.createElement('a')
  a.href = url
  a.download = `callvault-${identity.guid.slice(0, 8)}.cvkey`
  a.click()
  setTimeout(() => URL.revokeObjectURL(url), 10000)
}
$('invite-btn').onclick = async () => {
  const token = makeInvite()
  await session.request('connection.invite', { token })
  state.inviteToken = token
  view.invite(token)
}
$('connect-btn').onclick = async () => {
  const theirs = $('connect-token').value.trim()
  const m = await session.request('connection.connect', { token: theirs, mine: makeInvite() })
  if (m.kind.endsWith('.error')) fail(m.payload.message)
  await refreshConnections()
}
$('accept').onclick = async () => {
  const from = calls.incoming?.peer_guid
  let c = state.connections.find((x) => x.guid === from)
  if (!c) { await refreshConnections(); c = state.connections.find((x) => x.guid === from) }
  if (!c) return fail('That call is from no one among your connections.')
  calls.accept(c).catch(fail)
}
$('chat-form').onsubmit = (e) => {
  e.preventDefault()
  const text = $('chat-text').value
  if (!text.trim() || !chatWith) return
  conversations.send(chatWith.guid, text).then(() => { $('chat-text').value = '' }, fail)
}
$('chat-close').onclick = () => { chatWith = null; showChat() }
$('history-btn').onclick = () => showHistory().catch(fail)

// Devices: a preview out of a call (which also lets the browser name the devices), the call's
// own tracks in one; a choice applies at once, to the call too.
let preview = null
const stopPreview = () => { preview?.getTracks().forEach((t) => t.stop()); preview = null; view.preview(null) }
async function showPreview () {
  stopPreview()
  if (calls?.call) return
  preview = await navigator.mediaDevices.getUserMedia(devices.constraints('video'))
  view.preview(preview)
}
async function openDevices () {
  await showPreview()
  view.devices(await devices.list(), devices.chosen, (kind, id) => chooseDevice(kind, id).catch(fail))
}
async function chooseDevice (kind, id) {
  devices.choose(kind, id || null)
  state.devices.chosen = { ...devices.chosen }
  if (kind === 'audiooutput') return view.speaker(id)
  if (calls?.call) await calls.switchDevice(kind)
  else await showPreview()
}
$('devices-btn').onclick = () => openDevices().catch(fail)
$('call-devices').onclick = () => openDevices().catch(fail)
$('devices-close').onclick = () => { stopPreview(); view.closeDevices() }
// The network changed: a call restarts ICE to find its way on the new one.
window.addEventListener('online', () => calls?.networkChanged())
navigator.connection?.addEventListener?.('change', () => calls?.networkChanged())
// Installable: the shell is kept by a service worker.
navigator.serviceWorker?.register('/sw.js').catch((e) => console.log('no service worker:', e.message))
document.addEventListener('visibilitychange', () => {
  if (chatWith && document.visibilityState === 'visible') conversations.markRead(chatWith.guid)
  // Still ringing when the tab goes to the background: the notification shows then.
  if (calls?.incoming) ringer.incoming(calls.incoming)
})
$('reject').onclick = () => calls.reject()
$('hangup').onclick = () => calls.hangUp()
$('mute').onclick = () => view.toggle('mute', calls.call?.local?.getAudioTracks()[0], 'Mute', 'Unmute')
$('camera').onclick = () => view.toggle('camera', calls.call?.local?.getVideoTracks()[0], 'Camera off', 'Camera on')

identityReady.then(() => {
  const stored = storedIdentity(localStorage)
  $('unlock-form').hidden = !stored
  $('create-form').hidden = !!stored
  view.state(stored ? 'locked' : 'signed out')
  if (stored === 'plain') fail('Choose a passphrase: this browser kept your key unsealed; unlocking seals it.')
}).catch(fail)
