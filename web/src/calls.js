// The call controller: one 1:1 call at a time, through the vault's call requests
// (docs/PROTOCOL.md) and app-to-app sealed signals (the key exchange, the SDP offer and answer,
// and ICE candidates trickled as they are found), with media protected by the E2EE worker. No
// DOM: it tells its `view` what to show.

import { quality, sampleOf } from './quality.js'

const enc = new TextEncoder()
const dec = new TextDecoder()
export const b64 = (bytes) => btoa(String.fromCharCode(...bytes))
export const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0))
const stamp = () => new Date().toISOString()
/** Marks a moment of the call's setup (the milestones `stats()` reports). */
const mark = (call, what) => { (call.marks ??= {})[what] = Date.now() }

/** A sealed signal's envelope: what is sealed to the peer for `call_id`. */
export function envelope (callId, signalType, bytes) {
  return JSON.stringify({ v: 1, call_id: callId, signal_type: signalType, body: b64(bytes) })
}

/** The body of an opened envelope; throws unless it is for this call and signal type. */
export function body (opened, signal) {
  const env = JSON.parse(opened)
  if (env.v !== 1 || env.call_id !== signal.call_id || env.signal_type !== signal.signal_type) throw new Error('signal does not hold')
  return unb64(env.body)
}

/** At most this many trickled candidates are taken from a peer per call; the rest are dropped. */
export const MAX_TRICKLED = 64

/** A trickled candidate's sealed body (an RTCIceCandidate's JSON); null at the end of candidates. */
export function candidateBody (candidate) {
  return enc.encode(JSON.stringify(candidate ? candidate.toJSON() : { candidate: '' }))
}

/** The candidate in a trickled body, as RTCPeerConnection.addIceCandidate takes it; null for none. */
export function parseCandidate (bytes) {
  const c = JSON.parse(dec.decode(bytes))
  if (typeof c !== 'object' || c === null || typeof c.candidate !== 'string' || c.candidate.length > 512) throw new Error('not a candidate')
  if (c.candidate === '') return null
  const out = { candidate: c.candidate, sdpMid: typeof c.sdpMid === 'string' ? c.sdpMid : null, sdpMLineIndex: Number.isInteger(c.sdpMLineIndex) ? c.sdpMLineIndex : 0 }
  // After an ICE restart a candidate says which generation it is for.
  if (typeof c.usernameFragment === 'string' && c.usernameFragment.length <= 256) out.usernameFragment = c.usernameFragment
  return out
}

/** The next signal of `type` of `call`: one already received, or the next to come. */
export function nextSignal (call, type, open) {
  return new Promise((resolve, reject) => {
    const look = () => {
      const i = call.signals.findIndex((s) => s.signal_type === type)
      if (i < 0) return false
      const s = call.signals.splice(i, 1)[0]
      try { resolve(body(open(call.peerKey, s.payload), s)) } catch (e) { reject(e) }
      return true
    }
    if (!look()) call.onSignal = () => { if (look()) call.onSignal = null }
  })
}

/** Thrown inside a call's setup when the call is no longer the current one: nothing to report. */
class Gone extends Error {}

export class Calls {
  /**
   * session: an AppSession; e2ee: an E2ee; seal(peerKey, text) and open(peerKey, payload): NIP-44
   * with the user's key; guid: the user's; view: {state, showCall, endCall, sas, remote, local};
   * relayOnly(): whether to hide this device's addresses; tamper: corrupt the receive key (tests);
   * devices: a Devices (devices.js), the microphone and camera the user chose.
   */
  constructor ({ session, e2ee, seal, open, guid, view, relayOnly = () => false, tamper = false, media = globalThis.navigator?.mediaDevices, devices = null, PeerConnection = globalThis.RTCPeerConnection }) {
    Object.assign(this, { session, e2ee, seal, open, guid, view, relayOnly, tamper, media, devices, PeerConnection })
    this.call = null
    this.incoming = null
    // The incoming call being answered (its signals are kept for it before it shows).
    this.accepting = null
    // Calls whose hang-up could not be sent (the app connection was down): sent on resume.
    this.unsent = []
    // Incoming calls that came while another was shown, oldest first.
    this.queued = []
  }

  /** The shown incoming call is settled: the next waiting one shows, or none. */
  nextIncoming () {
    this.incoming = this.queued.shift() ?? null
    this.view.incoming(this.incoming)
  }

  /** A message from the vault that concerns calls; true if it was one. */
  onMessage (m) {
    if (m.kind === 'call.incoming') {
      // One shown at a time; others wait their turn (at most 8 kept: past that they ring out).
      if (this.incoming && this.incoming.call_id !== m.payload.call_id) {
        if (!this.queued.some((q) => q.call_id === m.payload.call_id) && this.queued.length < 8) this.queued.push(m.payload)
      } else {
        this.incoming = m.payload
        this.view.incoming(m.payload)
      }
    } else if (m.kind === 'call.ended' || m.kind === 'call.rejected') {
      if (this.call && m.payload.call_id === this.call.id) this.end(m.kind === 'call.rejected' ? 'rejected' : 'ended')
      this.queued = this.queued.filter((q) => q.call_id !== m.payload.call_id)
      if (this.incoming && m.payload.call_id === this.incoming.call_id) this.nextIncoming()
    } else if (m.kind === 'call.signal' && [this.call, this.accepting].some((c) => c?.id === m.payload.call_id)) {
      const call = this.call?.id === m.payload.call_id ? this.call : this.accepting
      if (m.payload.signal_type === 'ice') return this.trickled(call, m.payload), true
      if (call.established && ['offer', 'answer'].includes(m.payload.signal_type)) {
        this.renegotiated(call, m.payload).catch((e) => this.view.media?.(`Media could not reconnect: ${e.message}`))
        return true
      }
      // A peer's setup signals, bounded: a repeated one replaces none, the oldest go.
      call.signals.push(m.payload)
      if (call.signals.length > 16) call.signals.shift()
      call.onSignal?.()
    } else {
      return false
    }
    return true
  }

  /**
   * Back online: `records`, the vault's newest call records, say what became of the calls while
   * the app connection was down. A call that ended meanwhile ends here; one that rings still
   * (and was not shown) shows; one shown that no longer rings goes. `connectionOf(guid)` names
   * callers.
   */
  resume (records, connectionOf = () => null) {
    const byId = new Map(records.map((r) => [r.call_id, r]))
    // Hang-ups this app could not send while it was away: sent now to the calls still open.
    for (const id of this.unsent.splice(0)) {
      if (['initiating', 'ringing', 'active'].includes(byId.get(id)?.status)) this.publishEnd(id)
    }
    const rec = this.call && byId.get(this.call.id)
    if (rec && ['ended', 'missed', 'rejected'].includes(rec.status)) this.end(rec.status)
    else if (rec?.status === 'active' && !this.call.established) {
      // Answered while away, but its setup was lost with the connection: it cannot go on.
      this.hangUp('could not be set up')
    }
    this.queued = this.queued.filter((q) => byId.get(q.call_id)?.status === 'ringing')
    if (this.incoming && byId.get(this.incoming.call_id)?.status !== 'ringing') this.nextIncoming()
    const ringing = records.find((r) => r.direction === 'incoming' && r.status === 'ringing' && r.call_id !== this.call?.id)
    if (ringing && !this.incoming) {
      const c = connectionOf(ringing.peer_guid)
      this.incoming = { call_id: ringing.call_id, peer_guid: ringing.peer_guid, call_type: ringing.call_type, peer_profile: { display_name: c?.display_name ?? ringing.peer_guid } }
      this.view.incoming(this.incoming)
    }
  }

  sendSignal (call, type, bytes) {
    const payload = this.seal(call.peerKey, envelope(call.id, type, bytes))
    this.session.publish('call.signal', { type: 'call.signal', message_id: crypto.randomUUID(), timestamp: stamp(), call_id: call.id, signal_type: type, payload })
  }

  async agree (call, peerPublic) {
    const role = call.outgoing ? 'caller' : 'callee'
    const [caller, callee] = call.outgoing ? [this.guid, call.peer] : [call.peer, this.guid]
    call.sas = await this.e2ee.agree({ role, peer: peerPublic, callId: call.id, caller, callee, tamper: this.tamper })
    this.view.sas(call.sas)
  }

  /** A candidate the peer trickled: added once the peer's description is set, kept until then. */
  trickled (call, signal) {
    if (call.trickledIn >= MAX_TRICKLED) return
    call.trickledIn = (call.trickledIn ?? 0) + 1
    let c
    try { c = parseCandidate(body(this.open(call.peerKey, signal.payload), signal)) } catch { return }
    if (!c) return
    if (call.pc?.remoteDescription && !call.describing) call.pc.addIceCandidate(c).catch(() => {})
    else (call.remoteIce ??= []).push(c)
  }

  /** The peer's description: set, then the candidates it trickled before it. */
  async remoteDescription (call, description) {
    // Candidates that come while it is being set are for it (an ICE restart's new generation).
    call.describing = true
    try {
      await call.pc.setRemoteDescription(description)
    } finally {
      call.describing = false
    }
    for (const c of call.remoteIce?.splice(0) ?? []) await call.pc.addIceCandidate(c).catch(() => {})
  }

  /** Our candidates go to the peer as they are found, once our description has gone (`flush`). */
  trickle (call, pc) {
    call.localIce = []
    pc.onicecandidate = (e) => {
      if (call.localIce) call.localIce.push(e.candidate)
      else this.sendSignal(call, 'ice', candidateBody(e.candidate))
    }
    return () => {
      for (const c of call.localIce ?? []) this.sendSignal(call, 'ice', candidateBody(c))
      call.localIce = null
    }
  }

  async peerConnection (call) {
    const [asked, opened] = await Promise.allSettled([
      this.session.turnCredentials(this.relayOnly()),
      this.media.getUserMedia(this.devices?.constraints(call.type) ?? { audio: true, video: call.type === 'video' }),
    ])
    if (opened.status === 'rejected') throw opened.reason
    const local = opened.value
    // Refused past this point: the camera and microphone are let go.
    const refuse = (e) => { local.getTracks().forEach((t) => t.stop()); throw e }
    if (asked.status === 'rejected') refuse(asked.reason)
    const turn = asked.value
    if (this.call !== call && this.accepting !== call) refuse(new Error('the call is over'))
    if (this.relayOnly() && !turn) refuse(new Error('Hiding your address needs the server\'s relay, and it did not answer: not calling'))
    call.local = local
    const pc = new this.PeerConnection(this.e2ee.peerConfig({ iceServers: turn?.ice_servers || [], iceTransportPolicy: turn?.ice_transport_policy || 'all' }))
    call.pc = pc
    call.flushIce = this.trickle(call, pc)
    const remote = new MediaStream()
    pc.ontrack = (e) => {
      this.e2ee.protectReceiver(e.receiver, e.track.kind)
      remote.addTrack(e.track)
      this.view.remote(remote)
    }
    pc.onconnectionstatechange = () => {
      mark(call, pc.connectionState)
      this.mediaState(call, pc.connectionState)
    }
    this.view.local(local)
    for (const track of local.getTracks()) this.e2ee.protectSender(pc.addTrack(track, local), track.kind)
    if (this.e2ee.insertable) for (const t of pc.getTransceivers()) this.e2ee.protectReceiver(t.receiver, t.receiver.track.kind)
    return pc
  }

  /**
   * The call's microphone or camera (`audioinput` / `videoinput`) becomes the one chosen in
   * `devices`: the new track replaces the old on the same sender (its E2EE transform stays), muted
   * or off as the old one was, and the old one stops.
   */
  async switchDevice (kind) {
    const call = this.call
    if (!call?.pc || !call.local || !this.devices) return false
    const media = kind === 'audioinput' ? 'audio' : 'video'
    const old = call.local.getTracks().find((t) => t.kind === media)
    const sender = call.pc.getSenders().find((s) => s.track?.kind === media || (old && s.track === old))
    if (!sender) return false
    const turn = (call.switching = (call.switching ?? 0) + 1)
    const track = (await this.devices.open(kind)).getTracks()[0]
    // The call ended, or a later switch overtook this one: this track is not wanted.
    if (this.call !== call || call.switching !== turn) { track.stop(); return false }
    if (old) track.enabled = old.enabled
    try {
      await sender.replaceTrack(track)
    } catch (e) {
      track.stop()
      throw e
    }
    if (this.call !== call) { track.stop(); return false }
    if (old) { call.local.removeTrack(old); old.stop() }
    call.local.addTrack(track)
    this.view.local(call.local)
    return true
  }

  /**
   * What the media connection's state means to the person in the call: connected, interrupted
   * (ICE restarted if it does not come back within 3 s), lost (restarted at once), failed.
   */
  mediaState (call, s) {
    if (this.call !== call) return
    clearTimeout(call.restartTimer)
    if (s === 'connected') {
      call.restarts = 0
      this.view.state('in call')
      this.view.media?.(null)
      this.watchQuality(call)
    } else if (s === 'disconnected') {
      this.view.media?.('Media interrupted: reconnecting…')
      call.restartTimer = setTimeout(() => this.restartIce(call).catch(() => {}), 3000)
    } else if (s === 'failed') {
      if ((call.restarts ?? 0) < 3) {
        this.view.media?.('Media connection lost: trying again…')
        this.restartIce(call).catch(() => {})
      } else {
        this.view.media?.('Media connection failed. Hang up and call again.')
      }
    }
  }

  /**
   * Restarts ICE (new credentials, new candidates; the same call, keys and tracks): a new offer
   * to the peer, answered through the vaults like the first. Also when the network changes.
   */
  async restartIce (call = this.call) {
    if (!call?.established || this.call !== call || call.pc.signalingState !== 'stable') return false
    // Away from the server the offer cannot go: the restart comes when the app is back.
    if (!this.session.online) return false
    call.restarts = (call.restarts ?? 0) + 1
    mark(call, 'restart')
    call.pc.restartIce()
    await call.pc.setLocalDescription(await call.pc.createOffer({ iceRestart: true }))
    try {
      this.sendSignal(call, 'offer', enc.encode(call.pc.localDescription.sdp))
    } catch {
      await call.pc.setLocalDescription({ type: 'rollback' })
      return false
    }
    // Unanswered (lost, or a peer that does not renegotiate, as the Rust client): taken back, so
    // that a later restart can be made.
    clearTimeout(call.rollbackTimer)
    call.rollbackTimer = setTimeout(() => {
      if (this.call === call && call.pc.signalingState === 'have-local-offer') call.pc.setLocalDescription({ type: 'rollback' }).catch(() => {})
    }, 5000)
    return true
  }

  /**
   * An offer or answer after the call was set up: an ICE restart, ours answered or the peer's to
   * answer. When both restart at once, the callee gives way (its offer is rolled back).
   */
  async renegotiated (call, signal) {
    const sdp = dec.decode(body(this.open(call.peerKey, signal.payload), signal))
    // A new generation of candidates comes with it.
    call.trickledIn = 0
    const pc = call.pc
    if (signal.signal_type === 'answer') {
      if (pc.signalingState === 'have-local-offer') await this.remoteDescription(call, { type: 'answer', sdp })
      return
    }
    if (pc.signalingState === 'have-local-offer' && call.outgoing) return
    await this.remoteDescription(call, { type: 'offer', sdp })
    await pc.setLocalDescription(await pc.createAnswer())
    this.sendSignal(call, 'answer', enc.encode(pc.localDescription.sdp))
  }

  /** Every 2 s while the call is up: the quality from getStats, in words the call view shows. */
  watchQuality (call) {
    if (call.qualityTimer) return
    let before = null
    const tick = async () => {
      if (this.call !== call) return
      try {
        const now = sampleOf(await call.pc.getStats())
        if (this.call !== call) return
        call.quality = quality(before, now)
        before = now
        this.view.quality?.(call.quality)
      } catch { /* the connection closed meanwhile */ }
    }
    tick()
    call.qualityTimer = setInterval(tick, 2000)
  }

  /** The network changed (the browser went online again): the call's media finds its way anew. */
  networkChanged () {
    if (this.call?.established) this.restartIce(this.call).catch(() => {})
  }

  show (call) {
    this.call = call
    this.view.showCall(call)
    this.view.state(call.outgoing ? 'calling' : 'connecting')
  }

  /** Calls connection `c` (`audio` or `video`). A failure on the way hangs the call up. */
  async place (c, type) {
    const call = { id: crypto.randomUUID(), peer: c.guid, peerKey: c.user_key, peerName: c.display_name, type, outgoing: true, signals: [] }
    this.show(call)
    await this.setUp(call, () => this.setUpOutgoing(call, c, type))
  }

  /** Runs `call`'s setup: a call no longer current stops quietly, a failure hangs it up. */
  async setUp (call, steps) {
    try {
      await steps()
    } catch (e) {
      if (e instanceof Gone) return
      if (this.call === call) this.hangUp('failed')
      throw e
    }
  }

  /** Inside a setup, after each wait: stops it if `call` is no longer the current one. */
  still (call) {
    if (this.call !== call) throw new Gone()
  }

  async setUpOutgoing (call, c, type) {
    await this.session.request('call.initiate', { call_id: call.id, peer_guid: c.guid, call_type: type }, (m) => m.kind === 'call.initiated' && m.payload.call_id === call.id)
    this.still(call)
    this.view.state('ringing')
    // While it rings: the camera and microphone, the peer connection and the offer (its
    // candidates wait), and our half of the key exchange, so that an answer needs only the sends.
    const ready = (async () => {
      const pc = await this.peerConnection(call)
      await pc.setLocalDescription(await pc.createOffer())
      return { pc, mine: await this.e2ee.newKey() }
    })()
    ready.catch(() => {})
    const settled = await this.session.waitFor((m) => m.payload.call_id === call.id && ['call.accepted', 'call.rejected', 'call.ended', 'call.error'].includes(m.kind), 120000)
    this.still(call)
    if (settled.kind !== 'call.accepted') { this.end(settled.kind.replace('call.', ''), call); return }
    mark(call, 'accepted')
    this.view.state('connecting')
    const { pc, mine } = await ready
    this.still(call)
    mark(call, 'ready')
    await this.agree(call, settled.payload.public_key)
    this.still(call)
    this.sendSignal(call, 'key_exchange', unb64(mine))
    this.sendSignal(call, 'offer', enc.encode(pc.localDescription.sdp))
    call.flushIce()
    mark(call, 'offered')
    const answer = dec.decode(await nextSignal(call, 'answer', this.open))
    this.still(call)
    mark(call, 'answer')
    await this.remoteDescription(call, { type: 'answer', sdp: answer })
    call.established = true
  }

  /**
   * Answers the incoming call; `connection` is the caller's. A call in progress ends for it: the
   * vault hangs it up as it accepts this one (docs/PROTOCOL.md, "Busy and waiting calls"), and
   * this side lets its media go once the accept is taken. An accept the vault refuses (the call
   * gave up meanwhile) or that cannot be sent leaves the call in progress as it was.
   */
  async accept (connection) {
    const inc = this.incoming
    if (!inc || !connection) return
    this.nextIncoming()
    const call = { id: inc.call_id, peer: inc.peer_guid, peerKey: connection.user_key, peerName: connection.display_name, type: inc.call_type, outgoing: false, signals: [] }
    this.accepting = call
    mark(call, 'accept')
    let answer
    try {
      const mine = await this.e2ee.newKey()
      answer = await this.session.request('call.accept', { call_id: call.id, public_key: mine, key_id: crypto.randomUUID() }, (m) => m.kind === 'call.accepted' && m.payload.call_id === call.id)
    } finally {
      if (this.accepting === call) this.accepting = null
    }
    if (answer.kind !== 'call.accepted') throw new Error(answer.payload.message || 'the call could not be taken')
    if (this.call) this.end('ended')
    this.show(call)
    await this.setUp(call, () => this.setUpIncoming(call))
  }

  async setUpIncoming (call) {
    // The camera and the peer connection while the caller's key and offer are on their way.
    const ready = this.peerConnection(call)
    ready.catch(() => {})
    mark(call, 'accepted')
    const theirs = await nextSignal(call, 'key_exchange', this.open)
    this.still(call)
    mark(call, 'key')
    await this.agree(call, b64(theirs))
    const offer = dec.decode(await nextSignal(call, 'offer', this.open))
    this.still(call)
    mark(call, 'offer')
    const pc = await ready
    this.still(call)
    mark(call, 'ready')
    await this.remoteDescription(call, { type: 'offer', sdp: offer })
    await pc.setLocalDescription(await pc.createAnswer())
    this.still(call)
    this.sendSignal(call, 'answer', enc.encode(pc.localDescription.sdp))
    call.flushIce()
    mark(call, 'answered')
    call.established = true
  }

  /** Declines the incoming call (sent when the app is back, if it is away). */
  reject () {
    if (!this.incoming) return
    this.tellOrKeep('call.reject', this.incoming.call_id)
    this.nextIncoming()
  }

  /** Ends `call` here (its media, timers and view), if it is the current one. */
  end (why, call = this.call) {
    if (!call || call !== this.call) return
    clearInterval(call.qualityTimer)
    clearTimeout(call.restartTimer)
    clearTimeout(call.rollbackTimer)
    call.pc?.close()
    call.local?.getTracks().forEach((t) => t.stop())
    this.call = null
    this.view.endCall(why)
  }

  /** Tells the vault `kind` (`call.end`, `call.reject`) for call `id`. */
  publishEnd (id, kind = 'call.end') {
    this.session.publish(kind, { type: kind, message_id: crypto.randomUUID(), timestamp: stamp(), call_id: id })
  }

  /** As publishEnd; while the app is away, the call is kept to be hung up on resume. */
  tellOrKeep (kind, id) {
    try {
      this.publishEnd(id, kind)
    } catch {
      this.unsent.push(id)
    }
  }

  /** Hangs up: the vault is told (when the app is back, if it is away); the call ends here now. */
  hangUp (why = 'ended') {
    const call = this.call
    if (!call) return
    this.tellOrKeep('call.end', call.id)
    this.end(why, call)
  }

  /** Decoded frames and audio energy per kind, the selected local candidate's type, and when each
   * step of the setup came (ms since the epoch). */
  async stats () {
    const out = { audio: null, video: null, localCandidateType: null, marks: this.call?.marks ?? null, quality: this.call?.quality ?? null, restarts: this.call?.restarts ?? 0 }
    if (!this.call?.pc) return out
    const stats = await this.call.pc.getStats()
    for (const r of stats.values()) {
      if (r.type === 'inbound-rtp') out[r.kind] = { framesDecoded: r.framesDecoded, totalAudioEnergy: r.totalAudioEnergy, totalSamplesReceived: r.totalSamplesReceived, packetsReceived: r.packetsReceived }
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') out.localCandidateType = stats.get(r.localCandidateId)?.candidateType ?? null
    }
    return out
  }
}
