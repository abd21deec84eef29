// Device choices against stand-ins for mediaDevices and localStorage.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Devices } from '../../src/devices.js'

const storage = () => {
  const m = new Map()
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v), m }
}
const media = (devices, asked = []) => ({
  enumerateDevices: async () => devices,
  getUserMedia: async (c) => { asked.push(c); return { constraints: c } },
})

test('lists devices by kind, naming those without labels', async () => {
  const d = new Devices({
    media: media([
      { kind: 'audioinput', deviceId: 'm1', label: 'Headset' },
      { kind: 'videoinput', deviceId: 'c1', label: '' },
      { kind: 'videoinput', deviceId: 'c2', label: '' },
      { kind: 'audiooutput', deviceId: 's1', label: 'Speakers' },
      { kind: 'videoinput', deviceId: '', label: 'no id: not offered' },
      { kind: 'something', deviceId: 'x', label: 'other' },
    ]),
    storage: storage(),
  })
  assert.deepEqual(await d.list(), {
    audioinput: [{ id: 'm1', label: 'Headset' }],
    videoinput: [{ id: 'c1', label: 'Camera 1' }, { id: 'c2', label: 'Camera 2' }],
    audiooutput: [{ id: 's1', label: 'Speakers' }],
  })
})

test('a choice is kept across loads and asked for in the constraints', async () => {
  const s = storage()
  const first = new Devices({ media: media([]), storage: s })
  assert.deepEqual(first.constraints('video'), { audio: true, video: true })
  assert.deepEqual(first.constraints('audio'), { audio: true, video: false })
  first.choose('videoinput', 'c2')
  first.choose('audioinput', 'm1')
  const again = new Devices({ media: media([]), storage: s })
  assert.equal(again.of('videoinput'), 'c2')
  assert.deepEqual(again.constraints('video'), { audio: { deviceId: { ideal: 'm1' } }, video: { deviceId: { ideal: 'c2' } } })
  again.choose('audioinput', null)
  assert.deepEqual(again.constraints('audio'), { audio: true, video: false })
  assert.throws(() => again.choose('screen', 'x'), /no device kind/)
})

test('a broken stored choice is ignored; opening asks for exactly the chosen device', async () => {
  const s = storage()
  s.setItem('callvault.devices', '{not json')
  const asked = []
  const d = new Devices({ media: media([], asked), storage: s })
  assert.deepEqual(d.chosen, {})
  s.setItem('callvault.devices', JSON.stringify({ videoinput: 5, audioinput: 'm2' }))
  const e = new Devices({ media: media([], asked), storage: s })
  assert.deepEqual(e.chosen, { audioinput: 'm2' }, 'a non-string id is dropped')
  e.choose('videoinput', 'c9')
  await e.open('videoinput')
  await e.open('audioinput')
  assert.deepEqual(asked, [{ video: { deviceId: { exact: 'c9' } } }, { audio: { deviceId: { exact: 'm2' } } }])
})
