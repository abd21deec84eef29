// The ring and the notification of an incoming call, with stand-ins for Web Audio and the
// Notification API.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ringer, webAudioRing } from '../../src/ringer.js'

function fakes (hidden) {
  const log = []
  const audio = { start: () => log.push('start'), stop: () => log.push('stop') }
  const notify = (title, body) => { log.push(`notify ${title} / ${body}`); return { close: () => log.push('close') } }
  return { log, ringer: new Ringer({ audio, notify, isHidden: () => hidden.value, state: {} }) }
}
const call = { call_id: 'c1', call_type: 'video', peer_profile: { display_name: 'Ada' } }

test('an incoming call rings until it is gone, and a visible tab gets no notification', () => {
  const hidden = { value: false }
  const { log, ringer } = fakes(hidden)
  ringer.incoming(call)
  ringer.incoming(call)
  assert.equal(ringer.state.ringing, true)
  assert.deepEqual(log, ['start'], 'one ring, however often the call is shown')
  ringer.incoming(null)
  assert.equal(ringer.state.ringing, false)
  assert.deepEqual(log, ['start', 'stop'])
  assert.equal(ringer.state.notifications, 0)
})

test('a hidden tab shows one notification, closed when the call is taken or gone', () => {
  const hidden = { value: true }
  const { log, ringer } = fakes(hidden)
  ringer.incoming(call)
  ringer.incoming(call)
  assert.deepEqual(log, ['start', 'notify Ada is calling / Video call on callvault'])
  assert.equal(ringer.state.notifications, 1)
  ringer.stop()
  assert.deepEqual(log.slice(2), ['stop', 'close'])
})

test('the tab going to the background while it rings shows the notification then', () => {
  const hidden = { value: false }
  const { log, ringer } = fakes(hidden)
  ringer.incoming(call)
  hidden.value = true
  ringer.incoming(call)
  assert.deepEqual(log, ['start', 'notify Ada is calling / Video call on callvault'])
})

test('without Web Audio there is no ring, and nothing fails', () => {
  assert.equal(webAudioRing(undefined), null)
  const ringer = new Ringer({ audio: null, notify: () => null, isHidden: () => true, state: {} })
  ringer.incoming(call)
  assert.equal(ringer.state.ringing, true)
  assert.equal(ringer.state.notifications, 0, 'notifications not allowed: none counted')
  ringer.stop()
})
