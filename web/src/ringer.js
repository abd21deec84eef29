// What an incoming call does besides showing itself: it rings (two tones, 0.4 s on, 0.2 s off,
// 0.4 s on, 2 s off, as a phone does) until it is taken, declined or gone, and when the tab is
// hidden it shows a system notification (clicking it brings the tab forward). The audio and the
// notification are passed in (`makeAudio`, `notify`), so node's tests run it with stand-ins.

/** The ring's cadence, in seconds: tone, pause, tone, pause. */
export const CADENCE = [0.4, 0.2, 0.4, 2.0]
const TONES = [440, 480]

/** A ring in a Web Audio context: `{start(), stop()}`; null when there is no Web Audio. */
export function webAudioRing (AudioContextClass = globalThis.AudioContext) {
  if (!AudioContextClass) return null
  let ctx = null
  let timer = null
  let nodes = []
  const burst = (at, length) => {
    const gain = ctx.createGain()
    gain.gain.value = 0.08
    gain.connect(ctx.destination)
    for (const f of TONES) {
      const o = ctx.createOscillator()
      o.frequency.value = f
      o.connect(gain)
      o.start(at)
      o.stop(at + length)
      nodes.push(o)
    }
  }
  const cycle = () => {
    const t = ctx.currentTime
    burst(t, CADENCE[0])
    burst(t + CADENCE[0] + CADENCE[1], CADENCE[2])
    timer = setTimeout(cycle, CADENCE.reduce((a, b) => a + b, 0) * 1000)
  }
  return {
    // Made on a user's click (signing in), so the browser lets it sound later.
    prepare () { ctx ??= new AudioContextClass() },
    start () {
      ctx ??= new AudioContextClass()
      ctx.resume?.()
      if (!timer) cycle()
    },
    stop () {
      clearTimeout(timer)
      timer = null
      for (const o of nodes) { try { o.stop() } catch { /* already stopped */ } }
      nodes = []
    },
  }
}

/** A system notification, if the user allowed them: the Notification, or null. */
export function systemNotification (title, body, onClick) {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return null
  const n = new Notification(title, { body, tag: 'callvault-incoming', requireInteraction: true })
  n.onclick = () => { globalThis.focus?.(); onClick?.(); n.close() }
  return n
}

export class Ringer {
  /** `audio`: a ring (`webAudioRing()`) or null; `notify(title, body)`: a notification with
   * `close()`, or null; `isHidden()`: whether the tab is hidden; `state`: what tests read. */
  constructor ({ audio, notify, isHidden, state = {} }) {
    this.audio = audio
    this.notify = notify
    this.isHidden = isHidden
    this.state = state
    this.notification = null
    this.state.ringing = false
    this.state.notifications = 0
  }

  /** An incoming call (`call.incoming`'s payload) rings; null stops the ring. */
  incoming (payload) {
    if (!payload) return this.stop()
    if (!this.state.ringing) this.audio?.start()
    this.state.ringing = true
    if (this.isHidden() && !this.notification) {
      const who = payload.peer_profile?.display_name || 'someone'
      this.notification = this.notify(`${who} is calling`, `${payload.call_type === 'video' ? 'Video' : 'Audio'} call on callvault`)
      if (this.notification) this.state.notifications += 1
    }
  }

  stop () {
    this.audio?.stop()
    this.notification?.close()
    this.notification = null
    this.state.ringing = false
  }
}
