// The app connection (docs/APP-API.md): one WebSocket to `/app`; it answers the challenge and
// registers with the identity's signatures, then carries requests to the user's vault and what
// the vault sends back. A connection lost after it was ready is opened again, after 0.5 s, 1 s,
// 2 s ... up to every 15 s (each ±20 %), until it is back. No DOM: the page (and the node tests,
// with a stand-in WebSocket) drive it.

const now = () => Math.floor(Date.now() / 1000)

/** The waits before each attempt to connect again, the last repeated. */
export const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000]

export class AppSession {
  /**
   * url: `ws(s)://host/app`; guid and name: the user's; sign(event) -> signed event;
   * onMessage({kind, payload}) for what no request waits for; onError(text); onOffline() when a
   * ready connection is lost; onReconnect() when it is ready again (the bus kept nothing meanwhile:
   * ask the vault what changed).
   */
  constructor ({
    url, guid, name, sign, WebSocketImpl = globalThis.WebSocket, onMessage = () => {}, onError = () => {},
    onOffline = () => {}, onReconnect = () => {}, backoff = BACKOFF_MS, random = Math.random,
  }) {
    Object.assign(this, { url, guid, name, sign, WebSocketImpl, onMessage, onError, onOffline, onReconnect, backoff, random })
    this.ws = null
    this.ready = null
    this.online = false
    this.closed = false
    this.retryTimer = null
    this.waiters = []
    this.turnWaiter = null
  }

  /** Opens the socket and authenticates (registering when asked); resolves with `ready`. */
  connect () {
    return new Promise((resolve, reject) => {
      const ws = (this.ws = new this.WebSocketImpl(this.url))
      let opened = false
      const ready = (f) => { opened = true; this.online = true; resolve(f) }
      ws.onmessage = (e) => this.onFrame(JSON.parse(e.data), ready, reject)
      ws.onclose = () => {
        if (!opened) reject(new Error('closed'))
        else if (this.ws === ws) this.lost()
      }
    })
  }

  lost () {
    this.online = false
    if (this.closed) return
    this.onOffline()
    this.retry(0)
  }

  /** Attempt `n` to connect again, after its wait. */
  retry (n) {
    const wait = this.backoff[Math.min(n, this.backoff.length - 1)]
    this.retryTimer = setTimeout(() => {
      if (this.closed) return
      this.connect().then(() => this.onReconnect(), () => this.retry(n + 1))
    }, Math.round(wait * (0.8 + 0.4 * this.random())))
  }

  onFrame (f, resolve, reject) {
    if (f.type === 'challenge') {
      const createdAt = Math.abs(now() - f.server_time) > 30 ? f.server_time : now()
      this.send({ type: 'auth', note: JSON.stringify(this.sign({ kind: 22242, created_at: createdAt, tags: [], content: f.challenge })) })
    } else if (f.type === 'register_required') {
      const d = this.sign({ kind: 9470, created_at: now(), content: 'callvault vault delegation v1', tags: [['vault', f.vault_key], ['guid', this.guid]] })
      this.send({ type: 'register', delegation: JSON.stringify(d), display_name: this.name })
    } else if (f.type === 'ready') {
      this.ready = f
      resolve(f)
    } else if (f.type === 'message') {
      this.dispatch({ kind: f.subject.split('.forApp.')[1], payload: f.payload })
    } else if (f.type === 'turn_credentials') {
      this.turnWaiter?.(f.credentials)
    } else if (f.type === 'error' && f.code === 'unavailable' && this.turnWaiter) {
      // No TURN server configured: direct candidates only.
      this.turnWaiter(null)
    } else if (f.type === 'error') {
      this.onError(`${f.code}: ${f.message}`)
      if (!this.ready) reject(new Error(f.message))
    }
  }

  dispatch (m) {
    const i = this.waiters.findIndex((w) => w.pred(m))
    if (i >= 0) { this.waiters.splice(i, 1)[0].resolve(m); return }
    this.onMessage(m)
  }

  send (frame) { this.ws.send(JSON.stringify(frame)) }

  /** Publishes `payload` to the user's own `forVault.<kind>`; throws while reconnecting. */
  publish (kind, payload) {
    if (!this.online) throw new Error('not connected to the server: reconnecting')
    this.send({ type: 'publish', subject: `OwnerSpace.${this.guid}.forVault.${kind}`, payload })
  }

  /**
   * Publishes a request and resolves with its answer (by `in_reply_to`, or `match`); `messageId`
   * when the caller chose it (a sealed message body is bound to it).
   */
  request (kind, body, match, messageId = crypto.randomUUID()) {
    // Published first (it throws while reconnecting); the answer comes in a later frame.
    this.publish(kind, { type: kind, message_id: messageId, timestamp: new Date().toISOString(), ...body })
    return this.waitFor((m) => m.payload.in_reply_to === messageId || (match && match(m)))
  }

  /** The next message `pred` takes (others go to onMessage), within `ms`. */
  waitFor (pred, ms = 30000) {
    return new Promise((resolve, reject) => {
      const w = { pred, resolve }
      this.waiters.push(w)
      setTimeout(() => {
        const i = this.waiters.indexOf(w)
        if (i >= 0) { this.waiters.splice(i, 1); reject(new Error('timed out')) }
      }, ms)
    })
  }

  /** TURN credentials (relay-only if asked), or null when the server has none (within 3 s). */
  turnCredentials (relayOnly) {
    return new Promise((resolve) => {
      const done = (c) => { this.turnWaiter = null; clearTimeout(timer); resolve(c) }
      const timer = setTimeout(() => done(null), 3000)
      this.turnWaiter = done
      this.send({ type: 'turn_credentials', request_id: crypto.randomUUID(), relay_only: relayOnly })
    })
  }

  close () {
    this.closed = true
    clearTimeout(this.retryTimer)
    this.ws?.close()
  }
}

/**
 * Every connection of the user: `connection.list` answers a page at a time (in guid order, at
 * most 200), with `more` when others follow; the next page starts after the last guid.
 */
export async function listConnections (session) {
  let all = []
  for (;;) {
    const body = all.length ? { after: all[all.length - 1].guid } : {}
    const m = await session.request('connection.list', body)
    if (m.kind.endsWith('.error')) throw new Error(m.payload.message)
    const page = m.payload.connections || []
    all = all.concat(page)
    if (!m.payload.more || page.length === 0) return all
  }
}
