// The quality indicator over stand-in stats reports.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { quality, sampleOf } from '../../src/quality.js'

const report = (rows) => new Map(rows.map((r, i) => [String(i), r]))
const at = (t, { rtt = 0.012, aRecv, aLost = 0, vRecv, vLost = 0, frames, jitter = 0.002 }) => sampleOf(report([
  { type: 'candidate-pair', nominated: true, state: 'succeeded', currentRoundTripTime: rtt },
  { type: 'candidate-pair', nominated: false, state: 'failed', currentRoundTripTime: 9 },
  { type: 'inbound-rtp', kind: 'audio', packetsReceived: aRecv, packetsLost: aLost, jitter },
  { type: 'inbound-rtp', kind: 'video', packetsReceived: vRecv, packetsLost: vLost, framesDecoded: frames, jitter },
  { type: 'outbound-rtp', kind: 'video', packetsSent: 5 },
]), t)

test('a clean loopback call is good, with its numbers in words', () => {
  const q = quality(at(0, { aRecv: 100, vRecv: 300, frames: 60 }), at(2000, { aRecv: 200, vRecv: 600, frames: 120 }))
  assert.equal(q.level, 'good')
  assert.equal(q.rttMs, 12)
  assert.equal(q.lossPct, 0)
  assert.equal(q.fps, 30)
  assert.equal(q.words, 'Good connection (12 ms, 0 % lost, 30 fps)')
})

test('loss, round trip and jitter make it fair or poor; the worse kind counts', () => {
  const before = at(0, { aRecv: 100, vRecv: 300, frames: 60 })
  assert.equal(quality(before, at(2000, { aRecv: 195, aLost: 5, vRecv: 600, frames: 120 })).level, 'fair', '5 % audio loss')
  assert.equal(quality(before, at(2000, { aRecv: 200, vRecv: 480, vLost: 120, frames: 90 })).level, 'poor', '40 % video loss')
  assert.equal(quality(before, at(2000, { rtt: 0.2, aRecv: 200, vRecv: 600, frames: 120 })).level, 'fair')
  assert.equal(quality(before, at(2000, { rtt: 0.5, aRecv: 200, vRecv: 600, frames: 120 })).level, 'poor')
  assert.equal(quality(before, at(2000, { jitter: 0.05, aRecv: 200, vRecv: 600, frames: 120 })).level, 'fair')
  assert.equal(quality(before, at(2000, { aRecv: 200, vRecv: 600, frames: 120 })).lossPct, 0)
  assert.equal(quality(before, at(2000, { aRecv: 195, aLost: 5, vRecv: 600, frames: 120 })).lossPct, 5)
})

test('nothing arriving is poor and says so; a first sample alone has no rates', () => {
  const before = at(0, { aRecv: 100, vRecv: 300, frames: 60 })
  const q = quality(before, at(2000, { aRecv: 100, vRecv: 300, frames: 60 }))
  assert.equal(q.level, 'poor')
  assert.equal(q.words, 'Poor connection: nothing arrives')
  const first = quality(null, before)
  assert.equal(first.fps, null)
  assert.equal(first.lossPct, null)
  assert.equal(first.words, 'Good connection (12 ms)')
  assert.equal(sampleOf(new Map()).rttMs, null, 'an empty report reads as no numbers')
})
