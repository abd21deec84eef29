// The page's views: everything that touches the DOM. The rest of the client calls these with
// what to show; `state` is the object the tests read when the server runs with test hooks.

const $ = (id) => document.getElementById(id)

export function makeView (state, { ringer = null } = {}) {
  const view = {
    state (s) {
      state.state = s
      $('state').textContent = s
      document.body.dataset.state = s
    },
    /** The app connection: `online`, or `reconnecting` (calls go on; the server is out of reach). */
    link (how) {
      state.link = how
      state.links = [...(state.links ?? []), how].slice(-20)
      $('link').hidden = how === 'online'
      $('link').textContent = how === 'online' ? '' : 'Reconnecting to the server…'
    },
    fail (message) {
      state.lastError = message
      $('error').textContent = message
    },
    signedIn (identity) {
      $('who').textContent = `${identity.name} (${identity.guid.slice(0, 8)}…)`
      $('identity').hidden = true
      $('main').hidden = false
      $('error').textContent = ''
    },
    connections (list, onCall, onChat, unread = () => 0, onRevoke = () => {}) {
      const ul = $('connections')
      ul.replaceChildren()
      if (!list.length) {
        ul.append(Object.assign(document.createElement('li'), { className: 'empty', textContent: 'No connections yet: create an invite and give it to someone, or paste theirs below.' }))
      }
      for (const c of list) {
        const li = document.createElement('li')
        li.textContent = `${c.display_name} `
        li.dataset.guid = c.guid
        if (c.state === 'revoked') {
          li.className = 'revoked'
          li.append(Object.assign(document.createElement('span'), { className: 'meta', textContent: '(revoked: no calls or messages either way)' }))
          ul.append(li)
          continue
        }
        for (const [label, type] of [['Call', 'audio'], ['Video call', 'video']]) {
          const b = document.createElement('button')
          b.textContent = label
          b.className = `call-${type}`
          b.dataset.guid = c.guid
          b.onclick = () => onCall(c, type)
          li.append(b)
        }
        const m = document.createElement('button')
        m.className = 'open-chat'
        m.dataset.guid = c.guid
        const n = unread(c.guid)
        m.textContent = n ? `Messages (${n} new)` : 'Messages'
        m.setAttribute('aria-label', n ? `Messages with ${c.display_name}, ${n} new` : `Messages with ${c.display_name}`)
        m.onclick = () => onChat(c)
        li.append(m)
        const r = document.createElement('button')
        r.className = 'revoke'
        r.textContent = 'Revoke'
        r.setAttribute('aria-label', `Revoke ${c.display_name}`)
        r.onclick = () => onRevoke(c)
        li.append(r)
        ul.append(li)
      }
    },
    /** The call history from the vault, newest first; missed calls marked. */
    history (calls, nameOf) {
      state.history = calls
      $('history').hidden = false
      const ol = $('history-list')
      ol.replaceChildren()
      if (!calls.length) {
        ol.append(Object.assign(document.createElement('li'), { textContent: 'No calls yet' }))
        return
      }
      for (const r of calls) {
        const li = document.createElement('li')
        li.className = r.status === 'missed' ? 'missed' : r.status
        const dir = r.direction === 'outgoing' ? '→' : '←'
        const length = r.duration_seconds != null ? ` ${r.duration_seconds} s` : ''
        li.textContent = `${new Date(r.created_at).toLocaleString()} ${dir} ${nameOf(r.peer_guid)} · ${r.call_type} · ${r.status}${length}`
        ol.append(li)
      }
    },
    /** The open conversation: its messages oldest first, and what its buttons do. */
    chat (peer, messages, { more, onOlder, onDelete }) {
      state.chat = peer ? { guid: peer.guid, name: peer.display_name, messages } : null
      $('chat').hidden = !peer
      if (!peer) return
      $('chat-with').textContent = peer.display_name
      $('chat-older').hidden = !more
      $('chat-older').onclick = onOlder
      const ol = $('chat-messages')
      ol.replaceChildren()
      for (const m of messages) {
        const li = document.createElement('li')
        li.className = m.outgoing ? 'mine' : 'theirs'
        li.dataset.item = m.item
        const who = document.createElement('span')
        who.className = 'who'
        who.textContent = m.outgoing ? 'You' : peer.display_name
        const text = document.createElement('span')
        text.className = m.sealed ? 'text' : 'text undecryptable'
        text.textContent = m.text
        const meta = document.createElement('span')
        meta.className = 'meta'
        meta.textContent = `${new Date(m.sentAt).toLocaleTimeString()} ${m.statusText}`
        li.append(who, text, meta)
        const del = document.createElement('button')
        del.className = 'delete'
        del.textContent = 'Delete'
        del.onclick = () => onDelete(m, false)
        li.append(del)
        if (m.outgoing) {
          const both = document.createElement('button')
          both.className = 'delete-both'
          both.textContent = 'Delete for both'
          both.onclick = () => onDelete(m, true)
          li.append(both)
        }
        ol.append(li)
      }
      ol.lastElementChild?.scrollIntoView?.({ block: 'nearest' })
    },
    /**
     * The devices panel: a list per kind (`lists` from Devices.list), the chosen one selected;
     * `onChoose(kind, id)` when the user picks (id '' for the browser's default).
     */
    devices (lists, chosen, onChoose) {
      state.devices = { lists, chosen: { ...chosen } }
      $('devices').hidden = false
      for (const [kind, list] of Object.entries(lists)) {
        const select = $(`${kind}-select`)
        if (!select) continue
        const none = Object.assign(document.createElement('option'), { value: '', textContent: 'Default' })
        select.replaceChildren(none, ...list.map((d) => Object.assign(document.createElement('option'), { value: d.id, textContent: d.label })))
        select.value = chosen[kind] && list.some((d) => d.id === chosen[kind]) ? chosen[kind] : ''
        // Browsers that cannot choose the speaker (no setSinkId) offer no choice.
        select.disabled = kind === 'audiooutput' && !('setSinkId' in HTMLMediaElement.prototype)
        select.onchange = () => onChoose(kind, select.value)
      }
    },
    closeDevices () { $('devices').hidden = true; view.preview(null) },
    preview (stream) { $('preview').srcObject = stream },
    /** Plays the far end on speaker `id` ('' for the default), where the browser can choose. */
    speaker (id) { return $('remote').setSinkId?.(id ?? '') },
    invite (token) { $('invite-token').value = token },
    /** The call that rings, or none; during a call it shows as waiting (taking it ends the call). */
    incoming (payload) {
      state.incoming = payload
      ringer?.incoming(payload)
      const waiting = !!payload && !!state.call
      state.waiting = waiting ? payload : null
      document.body.dataset.waiting = waiting ? 'yes' : 'no'
      if (!payload) { if (!state.call) view.state('ready'); return }
      $('incoming-what').textContent = waiting ? 'Waiting' : 'Incoming'
      $('incoming-from').textContent = payload.peer_profile?.display_name || payload.peer_guid
      $('incoming-type').textContent = payload.call_type
      $('accept').textContent = waiting ? 'End call and accept' : 'Accept'
      $('reject').textContent = waiting ? 'Decline' : 'Reject'
      if (!waiting) view.state('incoming call')
    },
    showCall (call) {
      state.call = call
      $('call').hidden = false
      $('peer').textContent = call.peerName
    },
    endCall (why) {
      state.call = null
      state.lastCallEnd = why
      $('call').hidden = true
      $('decrypt').textContent = ''
      view.media(null)
      view.quality(null)
      view.state(`call ${why}`)
    },
    /** Words for the media connection when it is not simply up (interrupted, lost, failed). */
    media (words) {
      state.mediaWords = words
      $('media-state').textContent = words ?? ''
    },
    /** The call's quality (quality.js): its level and words. */
    quality (q) {
      state.quality = q
      $('quality').textContent = q?.words ?? ''
      $('quality').dataset.level = q?.level ?? ''
    },
    sas (sas) {
      state.sas = sas
      $('sas').textContent = sas ? `Security code: ${sas}` : ''
    },
    e2ee (stats) {
      const before = state.e2ee
      state.e2ee = stats
      if (stats.failed > before.failed && stats.decrypted === before.decrypted) state.decryptState = 'cannot decrypt'
      else if (stats.decrypted > before.decrypted) state.decryptState = 'ok'
      $('decrypt').textContent = state.call ? (state.decryptState === 'ok' ? 'end-to-end encrypted' : 'cannot decrypt') : ''
    },
    remote (stream) { $('remote').srcObject = stream },
    local (stream) { $('local').srcObject = stream },
    toggle (button, track, on, off) {
      if (!track) return
      track.enabled = !track.enabled
      $(button).textContent = track.enabled ? on : off
    },
  }
  return view
}
