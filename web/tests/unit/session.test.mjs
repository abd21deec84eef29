// The app connection against a stand-in WebSocket: authentication and registration frames,
// requests answered by in_reply_to, other messages passed on, timeouts, TURN credentials.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AppSession } from '../../src/session.js'

class FakeSocket {
  static last = null
  constructor (url) { this.url = url; this.sent = []; FakeSocket.last = this }
  send (text) { this.sent.push(JSON.parse(text)) }
  close () { this.onclose?.() }
  push (frame) { this.onmessage({ data: JSON.stringify(frame) }) }
}

function session (extra = {}) {
  const signed = []
  const s = new AppSession({
    url: 'ws://x/app', guid: 'g'.repeat(40), name: 'Ada', WebSocketImpl: FakeSocket,
    sign: (e) => { signed.push(e); return { ...e, sig: 'sig' } },
    ...extra,
  })
  return { s, signed }
}

test('answers the challenge, registers when asked, and resolves on ready', async () => {
  const { s, signed } = session()
  const ready = s.connect()
  const ws = FakeSocket.last
  ws.push({ type: 'challenge', challenge: 'c'.repeat(64), server_time: Math.floor(Date.now() / 1000) })
  assert.equal(ws.sent[0].type, 'auth')
  assert.equal(signed[0].kind, 22242)
  assert.equal(signed[0].content, 'c'.repeat(64))
  assert.equal(JSON.parse(ws.sent[0].note).sig, 'sig')
  ws.push({ type: 'register_required', vault_key: 'v'.repeat(64) })
  assert.equal(ws.sent[1].type, 'register')
  assert.equal(ws.sent[1].display_name, 'Ada')
  assert.deepEqual(signed[1].tags, [['vault', 'v'.repeat(64)], ['guid', 'g'.repeat(40)]])
  ws.push({ type: 'ready', guid: 'g'.repeat(40), delegation: '{}' })
  assert.equal((await ready).type, 'ready')
})

test('a clock far from the server signs with the server time', () => {
  const { s, signed } = session()
  s.connect()
  FakeSocket.last.push({ type: 'challenge', challenge: 'x', server_time: 1000 })
  assert.equal(signed[0].created_at, 1000)
})

test('an error before ready rejects the connection', async () => {
  const errors = []
  const { s } = session({ onError: (e) => errors.push(e) })
  const ready = s.connect()
  FakeSocket.last.push({ type: 'error', code: 'registration_closed', message: 'closed' })
  await assert.rejects(ready, /closed/)
  assert.deepEqual(errors, ['registration_closed: closed'])
})

test('requests resolve by in_reply_to; other messages go to onMessage', async () => {
  const other = []
  const { s } = session({ onMessage: (m) => other.push(m) })
  s.connect()
  const ws = FakeSocket.last
  ws.push({ type: 'ready' })
  const answered = s.request('connection.list', {})
  const sent = ws.sent.at(-1)
  assert.equal(sent.subject, `OwnerSpace.${'g'.repeat(40)}.forVault.connection.list`)
  ws.push({ type: 'message', subject: `OwnerSpace.${'g'.repeat(40)}.forApp.call.incoming`, payload: { call_id: 'c1' } })
  ws.push({ type: 'message', subject: `OwnerSpace.${'g'.repeat(40)}.forApp.connection.list`, payload: { in_reply_to: sent.payload.message_id, connections: [] } })
  const m = await answered
  assert.equal(m.kind, 'connection.list')
  assert.deepEqual(other.map((o) => o.kind), ['call.incoming'])
  await assert.rejects(s.waitFor(() => false, 20), /timed out/)
})

test('TURN credentials, or null when the server has none', async () => {
  const { s } = session()
  s.connect()
  const ws = FakeSocket.last
  ws.push({ type: 'ready' })
  const none = s.turnCredentials(true)
  assert.equal(ws.sent.at(-1).relay_only, true)
  ws.push({ type: 'error', code: 'unavailable', message: 'no TURN' })
  assert.equal(await none, null)
  const some = s.turnCredentials(false)
  ws.push({ type: 'turn_credentials', request_id: 'r', credentials: { ice_servers: [1] } })
  assert.deepEqual(await some, { ice_servers: [1] })
})
