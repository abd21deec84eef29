// The conversations' parts that need no browser: the sealed envelope (bound to its message_id,
// the same format as the Rust client's), and what the vault's notifications do to a conversation.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Conversations, MAX_TEXT_BYTES, envelope, statusText, textOf } from '../../src/messages.js'

test('an envelope opens only for its message, and the largest text is the limit', () => {
  const e = envelope('id-1', 'hello 👋 — ünïcode')
  assert.deepEqual(Object.keys(JSON.parse(e)).sort(), ['message_id', 'text', 'v'])
  assert.equal(textOf(e, 'id-1'), 'hello 👋 — ünïcode')
  assert.throws(() => textOf(e, 'id-2'), /does not hold/)
  assert.equal(textOf(envelope('x', 'é'.repeat(MAX_TEXT_BYTES / 2)), 'x').length, MAX_TEXT_BYTES / 2)
  assert.throws(() => envelope('x', 'a'.repeat(MAX_TEXT_BYTES + 1)), /longer than 16384/)
})

/** A stand-in session: records what is published and answers requests from `answers`. */
function standIn (answers) {
  const sent = []
  return {
    sent,
    publish: (kind, payload) => sent.push({ kind, payload }),
    request: async (kind, body, _match, messageId = 'generated') => {
      sent.push({ kind, body, messageId })
      return answers[kind]({ ...body, message_id: messageId })
    },
  }
}

test('a conversation follows sends, receipts, reads and deletes', async () => {
  const changes = []
  const session = standIn({
    'message.send': (req) => ({ kind: 'message.sent', payload: { in_reply_to: req.message_id, conversation: 'bob', item: '1764000000000-o-1', seq: 1, sent_at: '2026-12-01T10:00:00Z', body: req.body } }),
  })
  // The "sealing" here is the identity, so the body is the envelope.
  const c = new Conversations({ session, seal: (_k, p) => p, open: (_k, p) => p, keyOf: () => 'bob-key', onChange: (g) => changes.push(g) })
  await c.send('bob', 'hi Bob')
  const req = session.sent[0]
  assert.equal(JSON.parse(req.body.body).message_id, req.messageId, 'the body is bound to the request id')
  assert.deepEqual(c.list('bob').map((m) => [m.text, m.status]), [['hi Bob', 'sent']])
  c.take({ kind: 'message.delivered', payload: { conversation: 'bob', seq: 1 } })
  assert.equal(statusText(c.list('bob')[0]), '✓✓ delivered')
  c.take({ kind: 'message.received', payload: { conversation: 'bob', item: '1764000000100-i-1', seq: 1, sent_at: '2026-12-01T10:00:01Z', sent_message_id: 'm-b1', body: envelope('m-b1', 'hi Alice') } })
  c.take({ kind: 'message.received', payload: { conversation: 'bob', item: '1764000000200-i-2', seq: 2, sent_at: '2026-12-01T10:00:02Z', sent_message_id: 'm-b2', body: envelope('other', 'replayed') } })
  assert.equal(c.of('bob').unread, 2)
  const [, first, second] = c.list('bob')
  assert.equal(first.text, 'hi Alice')
  assert.equal(second.sealed, false, 'a body bound to another message does not open')
  c.markRead('bob')
  assert.deepEqual(session.sent.at(-1).payload.seq, 2)
  c.markRead('bob')
  assert.equal(session.sent.filter((s) => s.kind === 'message.read').length, 1, 'read once')
  c.take({ kind: 'message.read', payload: { conversation: 'bob', reader: 'own', seq: 2 } })
  assert.equal(c.of('bob').unread, 0)
  c.take({ kind: 'message.read', payload: { conversation: 'bob', reader: 'peer', seq: 1 } })
  assert.equal(c.list('bob')[0].status, 'read')
  c.take({ kind: 'message.deleted', payload: { conversation: 'bob', item: '1764000000000-o-1' } })
  assert.deepEqual(c.list('bob').map((m) => m.seq), [1, 2])
  assert.ok(changes.length >= 6)
  assert.equal(c.take({ kind: 'call.incoming', payload: {} }), false, 'not a message notification')
})
