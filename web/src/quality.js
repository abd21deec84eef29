// The call's quality from two `getStats` reports a few seconds apart: round trip, loss and
// jitter of what arrives, frames per second of the far end's video; a level (good / fair / poor)
// and the words the call view shows. No DOM: pure functions over the stats' plain values.

/** What a report holds that the indicator reads: totals, so that two give the rates between. */
export function sampleOf (report, at = Date.now()) {
  const s = { at, rttMs: null, audio: null, video: null }
  for (const r of report.values()) {
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded' && typeof r.currentRoundTripTime === 'number') {
      s.rttMs = Math.round(r.currentRoundTripTime * 1000)
    }
    if (r.type === 'inbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) {
      s[r.kind] = {
        received: r.packetsReceived ?? 0,
        lost: Math.max(0, r.packetsLost ?? 0),
        jitterMs: typeof r.jitter === 'number' ? Math.round(r.jitter * 1000) : null,
        frames: r.framesDecoded ?? null,
      }
    }
  }
  return s
}

/** Loss between two samples of one kind, 0..1; null when nothing was expected. */
function lossBetween (a, b) {
  if (!a || !b) return null
  const received = b.received - a.received
  const lost = b.lost - a.lost
  const expected = received + lost
  return expected > 0 ? Math.max(0, lost) / expected : null
}

/**
 * The quality between samples `before` and `now`: `{level, rttMs, lossPct, jitterMs, fps, words}`.
 * Thresholds as calling apps use them: good under 150 ms and 2 % loss, poor past 400 ms or 10 %.
 */
export function quality (before, now) {
  const losses = [lossBetween(before?.audio, now.audio), lossBetween(before?.video, now.video)].filter((x) => x !== null)
  const loss = losses.length ? Math.max(...losses) : null
  const seconds = before ? (now.at - before.at) / 1000 : 0
  const frames = before?.video?.frames != null && now.video?.frames != null ? now.video.frames - before.video.frames : null
  const fps = frames !== null && seconds > 0 ? Math.round(frames / seconds) : null
  const jitters = [now.audio?.jitterMs, now.video?.jitterMs].filter((x) => typeof x === 'number')
  const jitterMs = jitters.length ? Math.max(...jitters) : null
  const rtt = now.rttMs
  let level = 'good'
  if ((rtt ?? 0) > 400 || (loss ?? 0) > 0.1 || (jitterMs ?? 0) > 100) level = 'poor'
  else if ((rtt ?? 0) > 150 || (loss ?? 0) > 0.02 || (jitterMs ?? 0) > 30) level = 'fair'
  const nothing = before && now.audio && before.audio && now.audio.received === before.audio.received
  if (nothing) level = 'poor'
  const lossPct = loss === null ? null : Math.round(loss * 1000) / 10
  const parts = []
  if (rtt !== null) parts.push(`${rtt} ms`)
  if (lossPct !== null) parts.push(`${lossPct} % lost`)
  if (fps !== null) parts.push(`${fps} fps`)
  const name = { good: 'Good connection', fair: 'Fair connection', poor: 'Poor connection' }[level]
  return { level, rttMs: rtt, lossPct, jitterMs, fps, words: nothing ? 'Poor connection: nothing arrives' : `${name}${parts.length ? ` (${parts.join(', ')})` : ''}` }
}
