// Microphone, camera and speaker: the devices the browser offers, the user's choice of each
// (kept in this browser; device ids are not secrets), and the constraints that ask for them. No
// DOM: the views show the lists, the call controller switches a call's tracks.

const KEY = 'callvault.devices'
/** The kinds a user chooses, as `enumerateDevices` names them. */
export const KINDS = ['audioinput', 'videoinput', 'audiooutput']

export class Devices {
  /** media: navigator.mediaDevices (or a stand-in); storage: localStorage (or a stand-in). */
  constructor ({ media = globalThis.navigator?.mediaDevices, storage = globalThis.localStorage } = {}) {
    this.media = media
    this.storage = storage
    let kept = {}
    try { kept = JSON.parse(storage?.getItem(KEY) ?? '{}') ?? {} } catch { kept = {} }
    this.chosen = Object.fromEntries(KINDS.filter((k) => typeof kept[k] === 'string').map((k) => [k, kept[k]]))
  }

  /**
   * The devices of each kind: `{audioinput: [{id, label}], ...}`; labels are empty until the
   * page may use a microphone or camera, so each gets a stand-in name.
   */
  async list () {
    const all = await this.media.enumerateDevices()
    const out = Object.fromEntries(KINDS.map((k) => [k, []]))
    for (const d of all) {
      if (!out[d.kind] || !d.deviceId) continue
      const n = out[d.kind].length + 1
      const fallback = { audioinput: 'Microphone', videoinput: 'Camera', audiooutput: 'Speaker' }[d.kind]
      out[d.kind].push({ id: d.deviceId, label: d.label || `${fallback} ${n}` })
    }
    return out
  }

  /** The chosen device of `kind`, if any. */
  of (kind) { return this.chosen[kind] ?? null }

  /** Chooses `id` for `kind` (null: the browser's default) and keeps the choice. */
  choose (kind, id) {
    if (!KINDS.includes(kind)) throw new Error(`no device kind ${kind}`)
    if (id) this.chosen[kind] = id
    else delete this.chosen[kind]
    this.storage?.setItem(KEY, JSON.stringify(this.chosen))
  }

  /**
   * getUserMedia constraints for a call of `type` (`audio` / `video`): the chosen devices where
   * there are (`ideal`, so a device that has gone falls back to another rather than failing).
   */
  constraints (type) {
    const want = (kind) => (this.of(kind) ? { deviceId: { ideal: this.of(kind) } } : true)
    return { audio: want('audioinput'), video: type === 'video' ? want('videoinput') : false }
  }

  /** A stream of only the chosen device of `kind` (exact: the user just picked it). */
  async open (kind) {
    const id = this.of(kind)
    const c = id ? { deviceId: { exact: id } } : true
    return this.media.getUserMedia(kind === 'audioinput' ? { audio: c } : { video: c })
  }
}
