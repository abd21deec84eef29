// The app connection against a stand-in WebSocket: authentication and registration frames,
// requests answered by in_reply_to, other messages passed on, timeouts, TURN credentials.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AppSession, BACKOFF_MS, listConnections } from '../../src/session.js'

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

test('a lost connection is opened again with backoff; publishing meanwhile throws', async () => {
  const events = []
  const waits = []
  const realSetTimeout = globalThis.setTimeout
  // Timers run at once, recording their waits.
  globalThis.setTimeout = (f, ms) => { waits.push(ms); queueMicrotask(f); return 0 }
  try {
    const { s } = session({ onOffline: () => events.push('offline'), onReconnect: () => events.push('back'), random: () => 0.5 })
    s.connect()
    const first = FakeSocket.last
    first.push({ type: 'ready', delegation: 'd' })
    assert.equal(s.online, true)
    first.close()
    assert.deepEqual(events, ['offline'])
    assert.equal(s.online, false)
    assert.throws(() => s.publish('call.end', {}), /reconnecting/)
    await new Promise((resolve) => realSetTimeout(resolve, 0))
    // The first attempt fails before it is ready; the second, after a longer wait, holds.
    const second = FakeSocket.last
    assert.notEqual(second, first)
    second.close()
    await new Promise((resolve) => realSetTimeout(resolve, 0))
    const third = FakeSocket.last
    assert.notEqual(third, second)
    third.push({ type: 'challenge', challenge: 'c', server_time: Math.floor(Date.now() / 1000) })
    assert.equal(third.sent[0].type, 'auth', 'it authenticates again')
    third.push({ type: 'ready', delegation: 'd' })
    await new Promise((resolve) => realSetTimeout(resolve, 0))
    assert.deepEqual(events, ['offline', 'back'])
    assert.equal(s.online, true)
    assert.deepEqual(waits.slice(0, 2), BACKOFF_MS.slice(0, 2), 'waits grow (jitter 0 at random 0.5)')
    // Closed on purpose: no attempt after.
    s.close()
    assert.equal(FakeSocket.last, third)
    assert.deepEqual(events, ['offline', 'back'])
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
})

test('the waits stop growing at the last', () => {
  const waits = []
  const realSetTimeout = globalThis.setTimeout
  globalThis.setTimeout = (_f, ms) => { waits.push(ms); return 0 }
  try {
    const { s } = session({ random: () => 1 })
    for (let n = 0; n < 9; n++) s.retry(n)
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
  assert.equal(waits.at(-1), Math.round(BACKOFF_MS.at(-1) * 1.2))
  assert.equal(waits.at(-2), waits.at(-1))
})

test('the connection list is read page after page', async () => {
  const asked = []
  const pages = [
    { connections: [{ guid: 'a'.repeat(40) }, { guid: 'b'.repeat(40) }], more: true },
    { connections: [{ guid: 'c'.repeat(40) }], more: false },
  ]
  const fake = {
    request: async (kind, body) => {
      asked.push({ kind, body })
      return { kind, payload: pages[asked.length - 1] }
    },
  }
  const all = await listConnections(fake)
  assert.deepEqual(all.map((c) => c.guid[0]), ['a', 'b', 'c'])
  assert.deepEqual(asked.map((a) => a.body), [{}, { after: 'b'.repeat(40) }])
  const refused = { request: async (kind) => ({ kind: 'connection.error', payload: { message: 'no' } }) }
  await assert.rejects(listConnections(refused), /no/)
})
