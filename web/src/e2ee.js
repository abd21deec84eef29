// The page's side of the E2EE worker (e2ee-worker.js): the call's ephemeral key and key
// agreement, and SFrame on every sender and receiver (RTCRtpScriptTransform, or Chromium's
// createEncodedStreams where it is missing or `transform=streams` is asked). Reports the worker's
// frame counts to onStats.

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

export class E2ee {
  constructor ({ preferStreams = false, onStats = () => {}, onError = () => {}, WorkerImpl = globalThis.Worker } = {}) {
    this.worker = new WorkerImpl('/e2ee-worker.js', { type: 'module' })
    this.waiters = {}
    this.onError = onError
    // Chromium hands a receiver's script transform frames only when the transform is set before
    // the receiver starts (ontrack is too late): receivers are protected as soon as they exist.
    this.insertable = 'RTCRtpScriptTransform' in globalThis && !preferStreams
    this.protectedReceivers = new WeakSet()
    this.worker.onmessage = (e) => {
      const m = e.data
      if (m.type === 'stats') return onStats(m)
      if (m.type === 'log') return console.log('worker:', m.message)
      this.waiters[m.type]?.(m)
    }
  }

  get path () { return this.insertable ? 'RTCRtpScriptTransform' : 'createEncodedStreams' }

  ask (msg, reply) {
    return new Promise((resolve) => {
      this.waiters[reply] = resolve
      this.waiters.error = (m) => { this.onError(m.message); resolve(m) }
      this.worker.postMessage(msg)
    })
  }

  /** A fresh ephemeral key for the call; its public half (base64). */
  async newKey () {
    return (await this.ask({ type: 'key', random: hex(crypto.getRandomValues(new Uint8Array(32))) }, 'public')).public
  }

  /** Agrees the call keys with the peer's public key; the security code (SAS). */
  async agree ({ role, peer, callId, caller, callee, tamper = false }) {
    return (await this.ask({ type: 'agree', role, peer, call_id: callId, caller, callee, tamper }, 'sas')).sas
  }

  /** What a peer connection needs for this path. */
  peerConfig (config) {
    return this.insertable ? config : { ...config, encodedInsertableStreams: true }
  }

  protectSender (sender, kind) {
    if (this.insertable) sender.transform = new RTCRtpScriptTransform(this.worker, { side: 'send', kind })
    else this.streams(sender.createEncodedStreams(), 'send', kind)
  }

  protectReceiver (receiver, kind) {
    if (this.protectedReceivers.has(receiver)) return
    this.protectedReceivers.add(receiver)
    if (this.insertable) receiver.transform = new RTCRtpScriptTransform(this.worker, { side: 'recv', kind })
    else this.streams(receiver.createEncodedStreams(), 'recv', kind)
  }

  streams ({ readable, writable }, side, kind) {
    this.worker.postMessage({ type: 'streams', side, kind, readable, writable }, [readable, writable])
  }
}
