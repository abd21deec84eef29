// The call controller's parts that need no browser: sealed-signal envelopes, signal buffering,
// and what vault messages do to the incoming-call state.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Calls, MAX_TRICKLED, body, candidateBody, envelope, nextSignal, parseCandidate } from '../../src/calls.js'

const enc = new TextEncoder()

test('an envelope opens only for its call and signal type', () => {
  const sealed = envelope('call-1', 'offer', enc.encode('v=0 sdp'))
  assert.equal(new TextDecoder().decode(body(sealed, { call_id: 'call-1', signal_type: 'offer' })), 'v=0 sdp')
  assert.throws(() => body(sealed, { call_id: 'call-2', signal_type: 'offer' }), /does not hold/)
  assert.throws(() => body(sealed, { call_id: 'call-1', signal_type: 'answer' }), /does not hold/)
})

test('a signal is taken from those already received, or waited for', async () => {
  const open = (_key, payload) => payload // the "sealing" here is the identity
  const call = { peerKey: 'k', signals: [{ call_id: 'c', signal_type: 'offer', payload: envelope('c', 'offer', enc.encode('early')) }] }
  assert.equal(new TextDecoder().decode(await nextSignal(call, 'offer', open)), 'early')
  const later = nextSignal(call, 'answer', open)
  call.signals.push({ call_id: 'c', signal_type: 'key_exchange', payload: envelope('c', 'key_exchange', enc.encode('k')) })
  call.onSignal()
  call.signals.push({ call_id: 'c', signal_type: 'answer', payload: envelope('c', 'answer', enc.encode('late')) })
  call.onSignal()
  assert.equal(new TextDecoder().decode(await later), 'late')
  assert.equal(call.signals.length, 1, 'the key exchange stays for whoever asks for it')
})

test('incoming calls are shown, and cleared when the caller gives up', () => {
  const shown = []
  const view = { incoming: (p) => shown.push(p), state () {}, endCall () {}, showCall () {}, sas () {} }
  const calls = new Calls({ session: {}, e2ee: {}, seal: () => '', open: () => '', guid: 'me', view })
  assert.equal(calls.onMessage({ kind: 'call.incoming', payload: { call_id: 'c1', peer_guid: 'p' } }), true)
  assert.equal(calls.incoming.call_id, 'c1')
  calls.onMessage({ kind: 'call.ended', payload: { call_id: 'c1' } })
  assert.equal(calls.incoming, null)
  assert.deepEqual(shown.map((p) => p?.call_id ?? null), ['c1', null])
  assert.equal(calls.onMessage({ kind: 'connection.accepted', payload: {} }), false)
})

const host = 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0'
const iceSignal = (callId, c) => ({ call_id: callId, signal_type: 'ice', payload: envelope(callId, 'ice', enc.encode(JSON.stringify(c))) })

test('a trickled candidate round-trips; bad ones are refused', () => {
  const c = { toJSON: () => ({ candidate: host, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'u' }) }
  assert.deepEqual(parseCandidate(candidateBody(c)), { candidate: host, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'u' })
  assert.equal(parseCandidate(candidateBody(null)), null, 'the end of candidates')
  assert.throws(() => parseCandidate(enc.encode('[1]')))
  assert.throws(() => parseCandidate(enc.encode('{"candidate": 5}')))
  assert.throws(() => parseCandidate(enc.encode(JSON.stringify({ candidate: 'x'.repeat(513) }))))
})

test('candidates before the peer\'s description wait for it; later ones go straight in; a flood is cut', async () => {
  const added = []
  const pc = {
    remoteDescription: null,
    async setRemoteDescription (d) { this.remoteDescription = d },
    async addIceCandidate (c) { added.push(c.candidate) },
  }
  const view = { incoming () {}, state () {}, endCall () {}, showCall () {}, sas () {} }
  const calls = new Calls({ session: {}, e2ee: {}, seal: () => '', open: (_k, p) => p, guid: 'me', view })
  calls.call = { id: 'c', peerKey: 'k', signals: [], pc }
  calls.onMessage({ kind: 'call.signal', payload: iceSignal('c', { candidate: host, sdpMid: '0', sdpMLineIndex: 0 }) })
  calls.onMessage({ kind: 'call.signal', payload: iceSignal('c', { candidate: 'not json', sdpMid: 7 }) })
  calls.onMessage({ kind: 'call.signal', payload: { ...iceSignal('c', { candidate: host }), payload: 'garbage' } })
  calls.onMessage({ kind: 'call.signal', payload: iceSignal('other-call', { candidate: host }) })
  assert.deepEqual(added, [], 'nothing added before the description')
  await calls.remoteDescription(calls.call, { type: 'answer', sdp: 'v=0' })
  assert.deepEqual(added, [host, 'not json'], 'the kept ones, in order; the unopenable and the other call\'s dropped')
  for (let i = 0; i < MAX_TRICKLED + 10; i++) calls.onMessage({ kind: 'call.signal', payload: iceSignal('c', { candidate: `${host} ${i}` }) })
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(added.length, MAX_TRICKLED - 1, 'at most MAX_TRICKLED taken per call: the garbage one counted too')
  assert.equal(calls.call.signals.length, 0, 'candidates are not kept as signals')
})

test('our candidates wait until our description has gone, then trickle one by one', () => {
  const sent = []
  const session = { publish: (kind, p) => sent.push([kind, p.signal_type, JSON.parse(p.payload).body]) }
  const view = { incoming () {}, state () {}, endCall () {}, showCall () {}, sas () {} }
  const calls = new Calls({ session, e2ee: {}, seal: (_k, text) => text, open: (_k, p) => p, guid: 'me', view })
  const call = { id: 'c', peerKey: 'k', signals: [] }
  const pc = {}
  const flush = calls.trickle(call, pc)
  const cand = (n) => ({ toJSON: () => ({ candidate: `${host} ${n}`, sdpMid: '0', sdpMLineIndex: 0 }) })
  pc.onicecandidate({ candidate: cand(1) })
  pc.onicecandidate({ candidate: cand(2) })
  assert.equal(sent.length, 0)
  flush()
  assert.equal(sent.length, 2)
  pc.onicecandidate({ candidate: cand(3) })
  pc.onicecandidate({ candidate: null })
  assert.deepEqual(sent.map(([k, t]) => `${k}/${t}`), Array(4).fill('call.signal/ice'))
  const opened = sent.map(([, , b]) => parseCandidate(Uint8Array.from(atob(b), (c) => c.charCodeAt(0))))
  assert.deepEqual(opened.map((c) => c?.candidate ?? null), [`${host} 1`, `${host} 2`, `${host} 3`, null])
})

test('back online, the vault\'s records end what ended, show what rings, drop what no longer does', () => {
  const shown = []
  let ended = null
  const view = { incoming: (p) => shown.push(p?.call_id ?? null), state () {}, endCall: (why) => { ended = why }, showCall () {}, sas () {} }
  const calls = new Calls({ session: {}, e2ee: {}, seal: () => '', open: () => '', guid: 'me', view })
  const closed = []
  calls.call = { id: 'talking', signals: [], pc: { close: () => closed.push('pc') }, local: { getTracks: () => [{ stop: () => closed.push('track') }] } }
  calls.incoming = { call_id: 'gone' }
  const records = [
    { call_id: 'talking', peer_guid: 'p1', direction: 'outgoing', call_type: 'video', status: 'ended' },
    { call_id: 'gone', peer_guid: 'p2', direction: 'incoming', call_type: 'audio', status: 'missed' },
    { call_id: 'rings', peer_guid: 'p3', direction: 'incoming', call_type: 'audio', status: 'ringing' },
  ]
  calls.resume(records, (guid) => (guid === 'p3' ? { display_name: 'Carol' } : null))
  assert.equal(ended, 'ended', 'the call that ended while away ends here')
  assert.deepEqual(closed, ['pc', 'track'], 'its media is let go')
  assert.equal(calls.call, null)
  assert.deepEqual(shown, [null, 'rings'], 'the missed one goes, the ringing one shows')
  assert.equal(calls.incoming.peer_profile.display_name, 'Carol')
  // Nothing changed: nothing happens.
  calls.resume(records)
  assert.deepEqual(shown, [null, 'rings'])
  // A call still active stays.
  calls.call = { id: 'on', signals: [], established: true }
  ended = null
  calls.resume([{ call_id: 'on', peer_guid: 'p1', direction: 'incoming', call_type: 'audio', status: 'active' }])
  assert.equal(ended, null)
  assert.equal(calls.call.id, 'on')
  // One answered while away whose setup was lost: hung up (the hang-up waits, the app being away).
  calls.call = { id: 'half', signals: [] }
  calls.resume([{ call_id: 'half', peer_guid: 'p1', direction: 'outgoing', call_type: 'audio', status: 'active' }])
  assert.equal(ended, 'could not be set up')
  assert.deepEqual(calls.unsent, ['half'])
  // Back again: the hang-up goes to the call still open, once.
  const sent = []
  calls.session = { publish: (kind, p) => sent.push([kind, p.call_id]) }
  calls.resume([{ call_id: 'half', peer_guid: 'p1', direction: 'outgoing', call_type: 'audio', status: 'active' }])
  calls.resume([{ call_id: 'half', peer_guid: 'p1', direction: 'outgoing', call_type: 'audio', status: 'active' }])
  assert.deepEqual(sent, [['call.end', 'half']])
})

test('a new camera replaces the old on the same sender, off if the old was off', async () => {
  const events = []
  const track = (kind, label, enabled = true) => ({ kind, label, enabled, stop () { events.push(`stop ${label}`) } })
  const oldCam = track('video', 'cam 1', false)
  const mic = track('audio', 'mic')
  const local = {
    tracks: [mic, oldCam],
    getTracks () { return this.tracks },
    removeTrack (t) { this.tracks = this.tracks.filter((x) => x !== t) },
    addTrack (t) { this.tracks.push(t) },
  }
  const videoSender = { track: oldCam, async replaceTrack (t) { events.push(`replace ${t.label}`); this.track = t } }
  const pc = { getSenders: () => [{ track: mic }, videoSender] }
  const devices = { open: async (kind) => { events.push(`open ${kind}`); return { getTracks: () => [track('video', 'cam 2')] } } }
  const view = { incoming () {}, state () {}, endCall () {}, showCall () {}, sas () {}, local: () => events.push('shown') }
  const calls = new Calls({ session: {}, e2ee: {}, seal: () => '', open: () => '', guid: 'me', view, devices })
  assert.equal(await calls.switchDevice('videoinput'), false, 'no call: nothing to switch')
  calls.call = { id: 'c', signals: [], pc, local }
  assert.equal(await calls.switchDevice('videoinput'), true)
  assert.deepEqual(events, ['open videoinput', 'replace cam 2', 'stop cam 1', 'shown'])
  assert.equal(videoSender.track.label, 'cam 2')
  assert.equal(videoSender.track.enabled, false, 'the camera stays off as it was')
  assert.deepEqual(local.getTracks().map((t) => t.label), ['mic', 'cam 2'])
})

test('the media connection\'s states in words: interrupted, then restarted; lost; failed for good', async () => {
  const words = []
  const realSetTimeout = globalThis.setTimeout
  const timers = []
  globalThis.setTimeout = (f, ms) => { timers.push({ f, ms }); return timers.length }
  try {
    const view = { incoming () {}, state () {}, endCall () {}, showCall () {}, sas () {}, media: (w) => words.push(w), quality () {} }
    const sent = []
    const session = { online: true, publish: (kind, p) => sent.push(p.signal_type) }
    const calls = new Calls({ session, e2ee: {}, seal: (_k, t) => t, open: () => '', guid: 'me', view })
    const pc = {
      signalingState: 'stable',
      restarted: 0,
      restartIce () { this.restarted++ },
      async createOffer (o) { assert.deepEqual(o, { iceRestart: true }); return { type: 'offer', sdp: 'v=0 restart' } },
      async setLocalDescription (d) { this.localDescription = d; this.signalingState = 'have-local-offer' },
      async getStats () { return new Map() },
    }
    const call = { id: 'c', peerKey: 'k', signals: [], pc, established: true }
    calls.call = call
    calls.mediaState(call, 'disconnected')
    assert.equal(words.at(-1), 'Media interrupted: reconnecting…')
    assert.equal(timers.at(-1).ms, 3000, 'a restart if it does not come back within 3 s')
    await timers.at(-1).f()
    assert.equal(pc.restarted, 1)
    assert.deepEqual(sent, ['offer'], 'the restart offer goes to the peer')
    calls.mediaState(call, 'connected')
    assert.equal(words.at(-1), null, 'back: no words')
    clearInterval(call.qualityTimer)
    call.qualityTimer = null
    for (let i = 0; i < 3; i++) {
      pc.signalingState = 'stable'
      calls.mediaState(call, 'failed')
      await new Promise((resolve) => queueMicrotask(resolve))
      assert.equal(words.at(-1), 'Media connection lost: trying again…')
    }
    calls.mediaState(call, 'failed')
    assert.equal(words.at(-1), 'Media connection failed. Hang up and call again.')
    assert.equal(calls.restartIce({ established: false }) instanceof Promise, true)
    assert.equal(await calls.restartIce({ established: false }), false, 'no restart before the call is set up')
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
})

test('a second incoming call waits its turn behind the one shown', () => {
  const shown = []
  const view = { incoming: (p) => shown.push(p?.call_id ?? null), state () {}, endCall () {}, showCall () {}, sas () {} }
  const published = []
  const session = { publish: (kind, p) => published.push([kind, p.call_id]) }
  const calls = new Calls({ session, e2ee: {}, seal: () => '', open: () => '', guid: 'me', view })
  calls.onMessage({ kind: 'call.incoming', payload: { call_id: 'c1', peer_guid: 'p1' } })
  calls.onMessage({ kind: 'call.incoming', payload: { call_id: 'c2', peer_guid: 'p2' } })
  calls.onMessage({ kind: 'call.incoming', payload: { call_id: 'c2', peer_guid: 'p2' } })
  calls.onMessage({ kind: 'call.incoming', payload: { call_id: 'c3', peer_guid: 'p3' } })
  assert.deepEqual(shown, ['c1'], 'the first stays shown')
  calls.reject()
  assert.deepEqual(published, [['call.reject', 'c1']])
  assert.deepEqual(shown, ['c1', 'c2'], 'declined: the next shows (once, though it came twice)')
  calls.onMessage({ kind: 'call.ended', payload: { call_id: 'c3' } })
  calls.onMessage({ kind: 'call.ended', payload: { call_id: 'c2' } })
  assert.deepEqual(shown, ['c1', 'c2', null], 'the caller gave up; the third gave up while waiting')
  for (let i = 0; i < 20; i++) calls.onMessage({ kind: 'call.incoming', payload: { call_id: `f${i}`, peer_guid: 'p' } })
  assert.equal(calls.queued.length, 8, 'a flood keeps at most 8 waiting')
})
