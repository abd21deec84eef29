// The app connection (docs/APP-API.md): one WebSocket to `/app`; it answers the challenge and
// registers with the identity's signatures, then carries requests to the user's vault and what
// the vault sends back. No DOM: the page (and the node tests, with a stand-in WebSocket) drive it.

const now = () => Math.floor(Date.now() / 1000)

export class AppSession {
  /**
   * url: `ws(s)://host/app`; guid and name: the user's; sign(event) -> signed event;
   * onMessage({kind, payload}) for what no request waits for; onError(text); onClose().
   */
  constructor ({ url, guid, name, sign, WebSocketImpl = globalThis.WebSocket, onMessage = () => {}, onError = () => {}, onClose = () => {} }) {
    Object.assign(this, { url, guid, name, sign, WebSocketImpl, onMessage, onError, onClose })
    this.ws = null
    this.ready = null
    this.waiters = []
    this.turnWaiter = null
  }

  /** Opens the socket and authenticates (registering when asked); resolves with `ready`. */
  connect () {
    return new Promise((resolve, reject) => {
      const ws = (this.ws = new this.WebSocketImpl(this.url))
      ws.onmessage = (e) => this.onFrame(JSON.parse(e.data), resolve, reject)
      ws.onclose = () => {
        if (!this.ready) reject(new Error('closed'))
        this.onClose()
      }
    })
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

  /** Publishes `payload` to the user's own `forVault.<kind>`. */
  publish (kind, payload) {
    this.send({ type: 'publish', subject: `OwnerSpace.${this.guid}.forVault.${kind}`, payload })
  }

  /**
   * Publishes a request and resolves with its answer (by `in_reply_to`, or `match`); `messageId`
   * when the caller chose it (a sealed message body is bound to it).
   */
  request (kind, body, match, messageId = crypto.randomUUID()) {
    const answered = this.waitFor((m) => m.payload.in_reply_to === messageId || (match && match(m)))
    this.publish(kind, { type: kind, message_id: messageId, timestamp: new Date().toISOString(), ...body })
    return answered
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

  close () { this.ws?.close() }
}
