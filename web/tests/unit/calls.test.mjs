// The call controller's parts that need no browser: sealed-signal envelopes, signal buffering,
// and what vault messages do to the incoming-call state.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Calls, body, envelope, nextSignal } from '../../src/calls.js'

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
