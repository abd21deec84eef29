// The callvault browser client: identity, the app API (docs/APP-API.md), connections, and 1:1 calls
// with audio and video end-to-end encrypted by SFrame in a worker (e2ee-worker.js).
// Plain ES modules, served as they are by `callvault serve` (no build step).
import { bytesToHex, generateSecretKey, initIdentity, nip44Decrypt, nip44Encrypt, publicOf, signEvent } from './identity.js'
import { displayNameProblem } from './names.js'

const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)
const enc = new TextEncoder()
const dec = new TextDecoder()

const b64 = (bytes) => btoa(String.fromCharCode(...bytes))
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0))
const b64url = (s) => btoa(String.fromCharCode(...enc.encode(s))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const now = () => Math.floor(Date.now() / 1000)
const uuid = () => crypto.randomUUID()
const stamp = () => new Date().toISOString()


// --- state shown by the UI and read by tests -------------------------------------------------

const cv = (window.cv = {
  state: 'signed out', guid: null, name: null, connections: [], incoming: null, call: null, sas: null,
  inviteToken: null, lastError: null, e2ee: { encrypted: 0, decrypted: 0, failed: 0 }, decryptState: 'ok',
})

function setState(s) {
  cv.state = s
  $('state').textContent = s
  document.body.dataset.state = s
}

function fail(message) {
  cv.lastError = message
  $('error').textContent = message
}

// --- identity ----------------------------------------------------------------------------------

let sk = null
function loadIdentity() {
  const saved = localStorage.getItem('callvault.sk')
  if (!saved) return false
  sk = saved
  cv.name = localStorage.getItem('callvault.name') || 'callvault user'
  cv.guid = publicOf(sk).guid
  return true
}

function createIdentity(name, importHex) {
  const candidate = importHex ? importHex.trim().toLowerCase() : generateSecretKey()
  const { guid } = publicOf(candidate) // throws on a key that is not one
  sk = candidate
  localStorage.setItem('callvault.sk', sk)
  localStorage.setItem('callvault.name', name)
  cv.name = name
  cv.guid = guid
}

// --- the app API -------------------------------------------------------------------------------

let ws = null
let session = null
const waiters = []

function send(frame) { ws.send(JSON.stringify(frame)) }

function publish(kind, payload) {
  send({ type: 'publish', subject: `OwnerSpace.${cv.guid}.forVault.${kind}`, payload })
}

function request(kind, body, match) {
  const message_id = uuid()
  publish(kind, { type: kind, message_id, timestamp: stamp(), ...body })
  return waitFor((m) => m.payload.in_reply_to === message_id || (match && match(m)))
}

function waitFor(pred, ms = 30000) {
  return new Promise((resolve, reject) => {
    const w = { pred, resolve }
    waiters.push(w)
    setTimeout(() => { const i = waiters.indexOf(w); if (i >= 0) { waiters.splice(i, 1); reject(new Error('timed out')) } }, ms)
  })
}

function connect() {
  return new Promise((resolve, reject) => {
    ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/app`)
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data)
      if (f.type === 'challenge') {
        const ev = signEvent(sk, { kind: 22242, created_at: Math.abs(now() - f.server_time) > 30 ? f.server_time : now(), tags: [], content: f.challenge })
        send({ type: 'auth', note: JSON.stringify(ev) })
      } else if (f.type === 'register_required') {
        const d = signEvent(sk, { kind: 9470, created_at: now(), content: 'callvault vault delegation v1', tags: [['vault', f.vault_key], ['guid', cv.guid]] })
        send({ type: 'register', delegation: JSON.stringify(d), display_name: cv.name })
      } else if (f.type === 'ready') {
        session = f
        resolve()
      } else if (f.type === 'message') {
        onMessage({ kind: f.subject.split('.forApp.')[1], payload: f.payload })
      } else if (f.type === 'turn_credentials') {
        turnWaiter?.(f.credentials)
        turnWaiter = null
      } else if (f.type === 'error' && f.code === 'unavailable' && turnWaiter) {
        // No TURN server configured: direct candidates only.
        turnWaiter(null)
      } else if (f.type === 'error') {
        fail(`${f.code}: ${f.message}`)
        if (!session) reject(new Error(f.message))
      }
    }
    ws.onclose = () => { if (!session) reject(new Error('closed')); setState('disconnected') }
  })
}

let turnWaiter = null
// Hide this device's addresses from the peer: media only through the TURN relay.
const relayOnly = () => params.get('relay') === '1' || $('relay-only').checked
function turnCredentials() {
  return new Promise((resolve) => {
    turnWaiter = (c) => { turnWaiter = null; resolve(c) }
    send({ type: 'turn_credentials', request_id: uuid(), relay_only: relayOnly() })
    setTimeout(() => { turnWaiter = null; resolve(null) }, 3000)
  })
}

function onMessage(m) {
  const i = waiters.findIndex((w) => w.pred(m))
  if (i >= 0) { waiters.splice(i, 1)[0].resolve(m); return }
  if (m.kind === 'call.incoming') {
    cv.incoming = m.payload
    $('incoming-from').textContent = m.payload.peer_profile?.display_name || m.payload.peer_guid
    $('incoming-type').textContent = m.payload.call_type
    setState('incoming call')
  } else if (m.kind === 'call.ended' || m.kind === 'call.rejected') {
    if (cv.call && m.payload.call_id === cv.call.id) endCall(m.kind === 'call.rejected' ? 'rejected' : 'ended')
    if (cv.incoming && m.payload.call_id === cv.incoming.call_id) { cv.incoming = null; setState('ready') }
  } else if (m.kind === 'call.signal' && cv.call) {
    cv.call.signals.push(m.payload)
    cv.call.onSignal?.()
  } else if (m.kind === 'connection.accepted') {
    refreshConnections()
  }
}

// --- connections -------------------------------------------------------------------------------

async function refreshConnections() {
  const m = await request('connection.list', {})
  cv.connections = m.payload.connections || []
  const list = $('connections')
  list.replaceChildren()
  for (const c of cv.connections) {
    const li = document.createElement('li')
    li.textContent = `${c.display_name} `
    for (const [label, type] of [['Call', 'audio'], ['Video call', 'video']]) {
      const b = document.createElement('button')
      b.textContent = label
      b.className = `call-${type}`
      b.dataset.guid = c.guid
      b.onclick = () => placeCall(c, type).catch((e) => fail(String(e)))
      li.append(b)
    }
    list.append(li)
  }
}

async function makeInvite() {
  const body = { delegation: session.delegation, display_name: cv.name, reach: 'local', nonce: bytesToHex(crypto.getRandomValues(new Uint8Array(16))), expires_at: now() + 86400 }
  const note = signEvent(sk, { kind: 9471, created_at: now(), tags: [], content: JSON.stringify(body) })
  return 'cvinv1_' + b64url(JSON.stringify(note))
}

// --- sealed signals ----------------------------------------------------------------------------

function seal(peerKey, callId, signalType, bytes) {
  return nip44Encrypt(sk, peerKey, JSON.stringify({ v: 1, call_id: callId, signal_type: signalType, body: b64(bytes) }))
}

function open(peerKey, s) {
  const env = JSON.parse(nip44Decrypt(sk, peerKey, s.payload))
  if (env.v !== 1 || env.call_id !== s.call_id || env.signal_type !== s.signal_type) throw new Error('signal does not hold')
  return unb64(env.body)
}

function sendSignal(call, type, bytes) {
  publish('call.signal', { type: 'call.signal', message_id: uuid(), timestamp: stamp(), call_id: call.id, signal_type: type, payload: seal(call.peerKey, call.id, type, bytes) })
}

function nextSignal(call, type) {
  return new Promise((resolve, reject) => {
    const look = () => {
      const i = call.signals.findIndex((s) => s.signal_type === type)
      if (i >= 0) { const s = call.signals.splice(i, 1)[0]; try { resolve(open(call.peerKey, s)) } catch (e) { reject(e) } return true }
      return false
    }
    if (!look()) call.onSignal = () => { if (look()) call.onSignal = null }
  })
}

// --- E2EE worker -------------------------------------------------------------------------------

const worker = new Worker('/e2ee-worker.js', { type: 'module' })
const workerWaiters = {}
worker.onmessage = (e) => {
  const m = e.data
  if (m.type === 'stats') {
    const before = cv.e2ee
    cv.e2ee = m
    const failing = m.failed > before.failed && m.decrypted === before.decrypted
    const ok = m.decrypted > before.decrypted
    if (failing) cv.decryptState = 'cannot decrypt'
    else if (ok) cv.decryptState = 'ok'
    $('decrypt').textContent = cv.call ? (cv.decryptState === 'ok' ? 'end-to-end encrypted' : 'cannot decrypt') : ''
    return
  }
  if (m.type === 'log') { console.log('worker:', m.message); return }
  workerWaiters[m.type]?.(m)
}
const ask = (msg, reply) => new Promise((resolve) => { workerWaiters[reply] = resolve; workerWaiters.error = (m) => { fail(m.message); resolve(m) }; worker.postMessage(msg) })

async function newKey() {
  const random = bytesToHex(crypto.getRandomValues(new Uint8Array(32)))
  return (await ask({ type: 'key', random }, 'public')).public
}

async function agree(call, peerPublic) {
  const role = call.outgoing ? 'caller' : 'callee'
  const caller = call.outgoing ? cv.guid : call.peer
  const callee = call.outgoing ? call.peer : cv.guid
  const r = await ask({ type: 'agree', role, peer: peerPublic, call_id: call.id, caller, callee, tamper: params.get('tamper') === '1' }, 'sas')
  cv.sas = r.sas
  $('sas').textContent = r.sas ? `Security code: ${r.sas}` : ''
}

// --- calls -------------------------------------------------------------------------------------

// RTCRtpScriptTransform is the standard; createEncodedStreams (Chromium's older API) is the
// fallback where it is missing, or with `?transform=streams`. Chromium hands a receiver's script
// transform frames only when the transform is set before the receiver starts (ontrack is too late),
// so receivers are protected as soon as their transceivers exist.
const insertable = 'RTCRtpScriptTransform' in window && params.get('transform') !== 'streams'
const protectedReceivers = new WeakSet()
cv.transformPath = insertable ? 'RTCRtpScriptTransform' : 'createEncodedStreams'

function protectSender(sender, kind) {
  if (insertable) sender.transform = new RTCRtpScriptTransform(worker, { side: 'send', kind })
  else {
    const { readable, writable } = sender.createEncodedStreams()
    worker.postMessage({ type: 'streams', side: 'send', kind, readable, writable }, [readable, writable])
  }
}

function protectReceiver(receiver, kind) {
  if (protectedReceivers.has(receiver)) return
  protectedReceivers.add(receiver)
  if (insertable) receiver.transform = new RTCRtpScriptTransform(worker, { side: 'recv', kind })
  else {
    const { readable, writable } = receiver.createEncodedStreams()
    worker.postMessage({ type: 'streams', side: 'recv', kind, readable, writable }, [readable, writable])
  }
}

async function peerConnection(call) {
  const turn = await turnCredentials()
  const config = { iceServers: turn?.ice_servers || [], iceTransportPolicy: turn?.ice_transport_policy || 'all' }
  if (!insertable) config.encodedInsertableStreams = true
  const pc = new RTCPeerConnection(config)
  const remote = new MediaStream()
  pc.ontrack = (e) => {
    protectReceiver(e.receiver, e.track.kind)
    remote.addTrack(e.track)
    $('remote').srcObject = remote
  }
  pc.onconnectionstatechange = () => { if (pc.connectionState === 'connected') setState('in call') }
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: call.type === 'video' })
  call.local = media
  $('local').srcObject = media
  for (const track of media.getTracks()) protectSender(pc.addTrack(track, media), track.kind)
  if (insertable) for (const t of pc.getTransceivers()) protectReceiver(t.receiver, t.receiver.track.kind)
  call.pc = pc
  return pc
}

async function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return
  await new Promise((resolve) => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve() }
    setTimeout(resolve, 3000)
  })
}

function showCall(call) {
  cv.call = call
  $('call').hidden = false
  $('peer').textContent = call.peerName
  setState(call.outgoing ? 'calling' : 'connecting')
}

async function placeCall(c, type) {
  const call = { id: uuid(), peer: c.guid, peerKey: c.user_key, peerName: c.display_name, type, outgoing: true, signals: [] }
  showCall(call)
  await request('call.initiate', { call_id: call.id, peer_guid: c.guid, call_type: type }, (m) => m.kind === 'call.initiated' && m.payload.call_id === call.id)
  setState('ringing')
  const settled = await waitFor((m) => m.payload.call_id === call.id && ['call.accepted', 'call.rejected', 'call.ended', 'call.error'].includes(m.kind), 120000)
  if (settled.kind !== 'call.accepted') { endCall(settled.kind.replace('call.', '')); return }
  setState('connecting')
  const mine = await newKey()
  await agree(call, settled.payload.public_key)
  sendSignal(call, 'key_exchange', unb64(mine))
  const pc = await peerConnection(call)
  await pc.setLocalDescription(await pc.createOffer())
  await gathered(pc)
  sendSignal(call, 'offer', enc.encode(pc.localDescription.sdp))
  const answer = dec.decode(await nextSignal(call, 'answer'))
  await pc.setRemoteDescription({ type: 'answer', sdp: answer })
}

async function acceptCall() {
  const inc = cv.incoming
  cv.incoming = null
  const c = cv.connections.find((x) => x.guid === inc.peer_guid) || (await refreshConnections(), cv.connections.find((x) => x.guid === inc.peer_guid))
  const call = { id: inc.call_id, peer: inc.peer_guid, peerKey: c.user_key, peerName: c.display_name, type: inc.call_type, outgoing: false, signals: [] }
  showCall(call)
  const mine = await newKey()
  await request('call.accept', { call_id: call.id, public_key: mine, key_id: uuid() }, (m) => m.kind === 'call.accepted' && m.payload.call_id === call.id)
  const theirs = await nextSignal(call, 'key_exchange')
  await agree(call, b64(theirs))
  const offer = dec.decode(await nextSignal(call, 'offer'))
  const pc = await peerConnection(call)
  await pc.setRemoteDescription({ type: 'offer', sdp: offer })
  await pc.setLocalDescription(await pc.createAnswer())
  await gathered(pc)
  sendSignal(call, 'answer', enc.encode(pc.localDescription.sdp))
}

function endCall(why) {
  const call = cv.call
  if (!call) return
  call.pc?.close()
  call.local?.getTracks().forEach((t) => t.stop())
  cv.call = null
  cv.lastCallEnd = why
  $('call').hidden = true
  $('decrypt').textContent = ''
  setState(`call ${why}`)
}

async function hangUp() {
  const call = cv.call
  if (!call) return
  publish('call.end', { type: 'call.end', message_id: uuid(), timestamp: stamp(), call_id: call.id })
  endCall('ended')
}

// Stats the tests read: decoded frames and audio energy per kind.
cv.stats = async () => {
  const out = { audio: null, video: null, localCandidateType: null }
  if (!cv.call?.pc) return out
  const stats = await cv.call.pc.getStats()
  for (const r of stats.values()) {
    if (r.type === 'inbound-rtp') out[r.kind] = { framesDecoded: r.framesDecoded, totalAudioEnergy: r.totalAudioEnergy, totalSamplesReceived: r.totalSamplesReceived, packetsReceived: r.packetsReceived }
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') out.localCandidateType = stats.get(r.localCandidateId)?.candidateType ?? null
  }
  return out
}

// --- wiring ------------------------------------------------------------------------------------

async function start() {
  $('who').textContent = `${cv.name} (${cv.guid.slice(0, 8)}…)`
  $('identity').hidden = true
  $('main').hidden = false
  setState('connecting to server')
  await connect()
  setState('ready')
  await refreshConnections()
}

const identityReady = initIdentity()

$('create-identity').onclick = async () => {
  const name = $('name').value || 'callvault user'
  const problem = displayNameProblem(name)
  if (problem) return fail(problem)
  try {
    await identityReady
    createIdentity(name, $('import').value || null)
  } catch (e) {
    return fail(`that is not a secret key: ${e.message}`)
  }
  start().catch((e) => fail(String(e)))
}
$('invite-btn').onclick = async () => {
  const token = await makeInvite()
  await request('connection.invite', { token })
  cv.inviteToken = token
  $('invite-token').value = token
}
$('connect-btn').onclick = async () => {
  const theirs = $('connect-token').value.trim()
  const m = await request('connection.connect', { token: theirs, mine: await makeInvite() })
  if (m.kind.endsWith('.error')) fail(m.payload.message)
  await refreshConnections()
}
$('accept').onclick = () => acceptCall().catch((e) => fail(String(e)))
$('reject').onclick = () => {
  publish('call.reject', { type: 'call.reject', message_id: uuid(), timestamp: stamp(), call_id: cv.incoming.call_id })
  cv.incoming = null
  setState('ready')
}
$('hangup').onclick = () => hangUp()
$('mute').onclick = () => {
  const t = cv.call?.local?.getAudioTracks()[0]
  if (t) { t.enabled = !t.enabled; $('mute').textContent = t.enabled ? 'Mute' : 'Unmute' }
}
$('camera').onclick = () => {
  const t = cv.call?.local?.getVideoTracks()[0]
  if (t) { t.enabled = !t.enabled; $('camera').textContent = t.enabled ? 'Camera off' : 'Camera on' }
}

identityReady.then(() => {
  if (loadIdentity()) return start()
  setState('signed out')
}).catch((e) => fail(String(e)))
