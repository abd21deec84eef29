// The E2EE module (/e2ee.wasm, built from crates/e2ee-wasm: callvault-crypto's call keys and
// SFrame, and the identity operations of crates/e2ee-wasm/src/identity.rs) and its byte ABI:
// write the input at cv_in(len), call an operation, read its output at cv_out(). Loaded once per
// realm (the page, the worker).

let loading = null

/** The module's exports (loaded on first use). */
export function loadE2ee () {
  loading ??= (async () => {
    const bytes = await (await fetch('/e2ee.wasm')).arrayBuffer()
    const module = await WebAssembly.compile(bytes)
    // The crypto crate links wasm-bindgen placeholders for an OS random source nothing calls:
    // the page and the worker pass their randomness in.
    const imports = {}
    for (const imp of WebAssembly.Module.imports(module)) {
      imports[imp.module] ??= {}
      imports[imp.module][imp.name] = () => { throw new Error(`unexpected call to ${imp.name}`) }
    }
    return (await WebAssembly.instantiate(module, imports)).exports
  })()
  return loading
}

/** Runs `op` on `input` (bytes) with extra i32 `args`; the output bytes, or null (failed). */
export function callE2ee (wasm, op, input, ...args) {
  const at = wasm.cv_in(input.length)
  new Uint8Array(wasm.memory.buffer, at, input.length).set(input)
  const len = wasm[op](input.length, ...args)
  if (len < 0) return null
  return new Uint8Array(wasm.memory.buffer, wasm.cv_out(), len).slice()
}

/** Runs a JSON operation (`cv_keys`, `cv_identity`); throws its error. */
export function callJson (wasm, op, request) {
  const out = callE2ee(wasm, op, new TextEncoder().encode(JSON.stringify(request)))
  const answer = JSON.parse(new TextDecoder().decode(out))
  if (answer.error) throw new Error(answer.error)
  return answer
}
