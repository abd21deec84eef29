// The E2EE worker: SFrame on every encoded audio and video frame, with the call keys, both from
// callvault-crypto compiled to WASM (/e2ee.wasm, crates/e2ee-wasm). Runs the page's
// RTCRtpScriptTransforms (or, where those are missing, the streams of createEncodedStreams).
//
// Messages from the page: {type:'key', random} -> {type:'public', public};
// {type:'agree', role, peer, call_id, caller, callee, tamper} -> {type:'sas', sas} or {type:'error'};
// {type:'streams', side, kind, readable, writable} (fallback path). The worker posts
// {type:'stats', encrypted, decrypted, failed} every second.

import { callE2ee, callJson, loadE2ee } from './wasm.js'

let wasm = null
const ready = loadE2ee().then((w) => { wasm = w })

const stats = { encrypted: 0, decrypted: 0, failed: 0 }

const call = (op, input, ...args) => callE2ee(wasm, op, input, ...args)

function keys(request) {
  try {
    return callJson(wasm, 'cv_keys', request)
  } catch (e) {
    return { error: e.message }
  }
}

// 0 audio, 1 video key frame, 2 video delta frame (see crates/e2ee-wasm).
function kindOf(frame, kind) {
  if (kind === 'audio') return 0
  return frame.type === 'key' ? 1 : 2
}

function transformer(side, kind) {
  return new TransformStream({
    transform(frame, controller) {
      const data = new Uint8Array(frame.data)
      const k = kindOf(frame, kind)
      if (side === 'send') {
        const out = call('cv_encrypt', data, k)
        if (!out) return // no keys yet: send nothing rather than plaintext
        stats.encrypted++
        frame.data = out.buffer
        controller.enqueue(frame)
      } else {
        const out = call('cv_decrypt', data, k)
        if (!out) { stats.failed++; return } // does not authenticate: dropped, never decoded
        stats.decrypted++
        frame.data = out.buffer
        controller.enqueue(frame)
      }
    },
  })
}

function pipe(side, kind, readable, writable) {
  ready.then(() => readable.pipeThrough(transformer(side, kind)).pipeTo(writable)).catch((e) => postMessage({ type: 'log', message: `pipe ${side} ${kind} failed: ${e}` }))
}

onrtctransform = (event) => {
  const t = event.transformer
  pipe(t.options.side, t.options.kind, t.readable, t.writable)
}

onmessage = async (event) => {
  const m = event.data
  await ready
  if (m.type === 'key') {
    postMessage({ type: 'public', ...keys({ op: 'new', random: m.random }) })
  } else if (m.type === 'agree') {
    const r = keys({ op: 'agree', role: m.role, peer: m.peer, call_id: m.call_id, caller: m.caller, callee: m.callee, tamper: !!m.tamper })
    postMessage(r.error ? { type: 'error', message: r.error } : { type: 'sas', sas: r.sas })
  } else if (m.type === 'streams') {
    pipe(m.side, m.kind, m.readable, m.writable)
  }
}

setInterval(() => postMessage({ type: 'stats', ...stats }), 1000)
