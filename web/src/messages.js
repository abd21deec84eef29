// Conversations with connections (the vault's `message` family, docs/APP-API.md): texts sealed
// app to app with NIP-44 (the same envelope as the Rust client: `{v, message_id, text}` with the
// text in base64, bound to its message_id), receipts, history pages, deletes. No DOM: the views
// are given what to show, and the node tests drive this with stand-ins.

/** The largest text, in UTF-8 bytes (as the vault and the Rust client). */
export const MAX_TEXT_BYTES = 16384

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })
const toB64 = (bytes) => btoa(String.fromCharCode(...bytes))
const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0))

/** The sealed envelope's plaintext for `text`, bound to `messageId`. */
export function envelope (messageId, text) {
  const bytes = enc.encode(text)
  if (bytes.length > MAX_TEXT_BYTES) throw new Error(`the message is longer than ${MAX_TEXT_BYTES} bytes`)
  // Chunks keep the spread below the engine's argument limit.
  let bin = ''
  for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192))
  return JSON.stringify({ v: 1, message_id: messageId, text: btoa(bin) })
}

/** The text of an opened envelope; throws unless it is bound to `messageId`. */
export function textOf (plaintext, messageId) {
  const e = JSON.parse(plaintext)
  if (e.v !== 1 || e.message_id !== messageId || typeof e.text !== 'string') throw new Error('the body does not hold this message')
  return dec.decode(fromB64(e.text))
}

/** How a message's status reads. */
export const statusText = (m) => m.outgoing ? ({ sent: '✓ sent', delivered: '✓✓ delivered', read: '✓✓ read' }[m.status] ?? m.status) : ''

export class Conversations {
  /**
   * session: an AppSession; seal(peerKey, plaintext) / open(peerKey, payload): NIP-44 with the
   * user's key; keyOf(guid): a connection's identity key; onChange(guid): a conversation changed.
   */
  constructor ({ session, seal, open, keyOf, onChange = () => {} }) {
    Object.assign(this, { session, seal, open, keyOf, onChange })
    this.byPeer = new Map()
  }

  /** The conversation with `guid`: messages by item (sorted: oldest first), unread count. */
  of (guid) {
    let c = this.byPeer.get(guid)
    if (!c) { c = { messages: new Map(), more: false, unread: 0, readThrough: 0 }; this.byPeer.set(guid, c) }
    return c
  }

  /** Messages oldest first. */
  list (guid) {
    return [...this.of(guid).messages.values()].sort((a, b) => (a.item < b.item ? -1 : a.item > b.item ? 1 : 0))
  }

  openText (guid, messageId, body) {
    try {
      return { text: textOf(this.open(this.keyOf(guid), body), messageId), sealed: true }
    } catch {
      return { text: 'this message cannot be decrypted', sealed: false }
    }
  }

  put (guid, m) {
    const c = this.of(guid)
    const had = c.messages.get(m.item)
    c.messages.set(m.item, { ...had, ...m })
    return c
  }

  /** Seals and sends `text` to `guid`; resolves once the vault took it. */
  async send (guid, text) {
    const messageId = crypto.randomUUID()
    const body = this.seal(this.keyOf(guid), envelope(messageId, text))
    const m = await this.session.request('message.send', { conversation: guid, body }, null, messageId)
    if (m.kind.endsWith('.error')) throw new Error(m.payload.message)
    this.take(m)
    return m.payload
  }

  /** Loads the newest page (or the one before the oldest shown, with `older`). */
  async load (guid, older = false) {
    const c = this.of(guid)
    const oldest = this.list(guid)[0]
    const req = { conversation: guid, limit: 50, ...(older && oldest ? { before: oldest.item } : {}) }
    const m = await this.session.request('message.history', req)
    if (m.kind.endsWith('.error')) throw new Error(m.payload.message)
    for (const h of m.payload.messages) {
      const outgoing = h.direction === 'outgoing'
      this.put(guid, { item: h.item, outgoing, seq: h.seq, sentAt: h.sent_at, status: h.status, ...this.openText(guid, h.sent_message_id, h.body) })
    }
    c.more = m.payload.more
    c.unread = this.list(guid).filter((x) => !x.outgoing && x.status === 'received').length
    this.onChange(guid)
  }

  /** The user saw the conversation: tells the vault (and the peer) up to its newest message. */
  markRead (guid) {
    const c = this.of(guid)
    const newest = this.list(guid).filter((x) => !x.outgoing).pop()
    if (!newest || newest.seq <= c.readThrough) return
    c.readThrough = newest.seq
    this.session.publish('message.read', { type: 'message.read', message_id: crypto.randomUUID(), timestamp: new Date().toISOString(), conversation: guid, seq: newest.seq })
  }

  /** Deletes a message here, and with `forBoth` (one's own) at the peer. */
  async remove (guid, item, forBoth) {
    const m = await this.session.request('message.delete', { conversation: guid, item, for_both: forBoth })
    if (m.kind.endsWith('.error')) throw new Error(m.payload.message)
    this.take(m)
  }

  /** A notification of the message family; true if it was one. */
  take ({ kind, payload: p }) {
    if (!kind.startsWith('message.')) return false
    const guid = p.conversation
    if (!guid) return true
    const c = this.of(guid)
    if (kind === 'message.sent' && p.body) {
      this.put(guid, { item: p.item, outgoing: true, seq: p.seq, sentAt: p.sent_at, status: 'sent', ...this.openText(guid, p.in_reply_to, p.body) })
    } else if (kind === 'message.received') {
      this.put(guid, { item: p.item, outgoing: false, seq: p.seq, sentAt: p.sent_at, status: 'received', ...this.openText(guid, p.sent_message_id, p.body) })
      c.unread += 1
    } else if (kind === 'message.delivered') {
      for (const m of c.messages.values()) if (m.outgoing && m.seq === p.seq && m.status === 'sent') m.status = 'delivered'
    } else if (kind === 'message.read' && p.reader === 'peer') {
      for (const m of c.messages.values()) if (m.outgoing && m.seq <= p.seq) m.status = 'read'
    } else if (kind === 'message.read') {
      for (const m of c.messages.values()) if (!m.outgoing && m.seq <= p.seq) m.status = 'read'
      c.readThrough = Math.max(c.readThrough, p.seq)
      c.unread = this.list(guid).filter((x) => !x.outgoing && x.status === 'received').length
    } else if (kind === 'message.deleted') {
      c.messages.delete(p.item)
    } else {
      return true
    }
    this.onChange(guid)
    return true
  }
}
