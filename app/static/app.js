// firehose pages: one small module of our own — no framework, no build step. It speaks
// Phoenix Channels (V2 JSON) over /socket/websocket, like every other client of the
// app, and patches the server-rendered DOM. Every page reads without it; with it, pages
// are live. User-written text only ever enters the DOM as text (textContent, attribute
// values), never as HTML.

const $ = (sel, root = document) => root.querySelector(sel)
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)]
const page = document.body.dataset.page
const me = document.body.dataset.userId
  ? {id: Number(document.body.dataset.userId), username: document.body.dataset.username}
  : null
const csrf = () => $('meta[name="csrf-token"]')?.content || ""

// ---------------------------------------------------------------------------------------
// Small helpers

function debounce(fn, ms){
  let timer
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms) }
}

let toastTimer
function toast(text){
  const el = $("#toast")
  if(!el){ return }
  el.textContent = text
  el.classList.add("show")
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => el.classList.remove("show"), 5000)
}

/** fetch with our CSRF header and JSON in and out; never throws. */
async function api(method, url, body){
  const opts = {method, credentials: "same-origin", headers: {accept: "application/json", "x-csrf-token": csrf()}}
  if(body !== undefined){
    opts.headers["content-type"] = "application/json"
    opts.body = JSON.stringify(body)
  }
  try {
    const res = await fetch(url, opts)
    let json = null
    try { json = await res.json() } catch { json = null }
    return {ok: res.ok, status: res.status, json, retryAfter: Number(res.headers.get("retry-after")) || 0}
  } catch {
    return {ok: false, status: 0, json: null, retryAfter: 0}
  }
}

function apiError(res){
  if(res.status === 0){ return "The server cannot be reached; try again." }
  if(res.status === 401){ return "Sign in first." }
  if(res.status === 429){ return `Slow down: try again in ${res.retryAfter || 1} s.` }
  return res.json?.error?.message || `Failed (HTTP ${res.status}).`
}

function pushError(reply){
  const r = reply.response || {}
  if(r.reason === "rate_limited"){ return `Slow down: try again in ${Math.ceil((r.retry_after_ms || 1000) / 1000)} s.` }
  if(reply.status === "timeout"){ return "No answer from the server; try again." }
  return r.reason ? `Refused: ${r.reason}.` : "Refused."
}

const clock = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit"})
const day = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric"})
const full = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "medium"})

function relTime(iso){
  const t = new Date(iso)
  if(Number.isNaN(t.getTime())){ return "" }
  const secs = (Date.now() - t.getTime()) / 1000
  if(secs < 45){ return "just now" }
  if(secs < 3600){ return `${Math.round(secs / 60)} min ago` }
  if(secs < 86400){ return clock.format(t) }
  return `${day.format(t)}, ${clock.format(t)}`
}

function setTime(el, iso){
  el.dateTime = iso
  el.textContent = relTime(iso)
  const t = new Date(iso)
  if(!Number.isNaN(t.getTime())){ el.title = full.format(t) }
}

function refreshTimes(){
  for(const el of $$("time[datetime]")){ if(el.dateTime){ el.textContent = relTime(el.dateTime) } }
}

function domainOf(url){
  try { return new URL(url).hostname.replace(/^www\./, "") } catch { return "" }
}

/** The badge colour of a username (the server's `views::hue`: the same sum mod 12). */
function hue(name){
  let sum = 0
  for(const byte of new TextEncoder().encode(name)){ sum = (Math.imul(sum, 31) + byte) >>> 0 }
  return sum % 12
}

const templates = new Map()
function fromTemplate(id){
  let tpl = templates.get(id)
  if(!tpl){
    tpl = $(`#${id}`).content.firstElementChild.cloneNode(true)
    dropIndentation(tpl)
    templates.set(id, tpl)
  }
  return tpl.cloneNode(true)
}

/** Removes the template's indentation (whitespace-only text with a line break): nodes
 * that render nothing but that every clone would carry through style and layout. A
 * space between two inline elements has no line break and stays. */
function dropIndentation(node){
  for(const child of [...node.childNodes]){
    if(child.nodeType === Node.TEXT_NODE){
      if(child.data.includes("\n") && child.data.trim() === ""){ child.remove() }
    } else if(child.nodeType === Node.ELEMENT_NODE){ dropIndentation(child) }
  }
}

// ---------------------------------------------------------------------------------------
// Phoenix Channels client (V2 JSON frames: [join_ref, ref, topic, event, payload])

const BACKOFF_MS = [10, 50, 100, 150, 200, 250, 500, 1000, 2000]
const REJOIN_MS = [1000, 2000, 5000]
const HEARTBEAT_MS = 30000
const PUSH_TIMEOUT_MS = 10000

class Socket {
  constructor(path){
    const scheme = location.protocol === "https:" ? "wss" : "ws"
    this.url = `${scheme}://${location.host}${path}/websocket?vsn=2.0.0`
    this.refs = 0
    this.channels = new Set()
    this.tries = 0
    this.beatRef = null
  }

  connect(){
    this.setState(this.tries ? "reconnecting" : "connecting")
    const ws = new WebSocket(this.url)
    this.ws = ws
    ws.onopen = () => {
      this.tries = 0
      this.setState("online")
      this.beatTimer = setInterval(() => this.heartbeat(), HEARTBEAT_MS)
      for(const channel of this.channels){ channel.rejoin() }
    }
    ws.onmessage = event => this.receive(event.data)
    ws.onclose = () => {
      clearInterval(this.beatTimer)
      this.beatRef = null
      for(const channel of this.channels){ channel.socketClosed() }
      this.setState("offline")
      const wait = BACKOFF_MS[this.tries] ?? 5000
      this.tries += 1
      setTimeout(() => this.connect(), wait)
    }
  }

  setState(state){
    const el = $("#conn")
    if(el){ el.dataset.state = state; el.textContent = state }
  }

  isOpen(){ return this.ws?.readyState === WebSocket.OPEN }

  makeRef(){ this.refs += 1; return String(this.refs) }

  send(frame){
    if(!this.isOpen()){ return false }
    this.ws.send(JSON.stringify(frame))
    return true
  }

  heartbeat(){
    if(this.beatRef){ this.ws.close(4000, "heartbeat timeout"); return }
    this.beatRef = this.makeRef()
    this.send([null, this.beatRef, "phoenix", "heartbeat", {}])
  }

  receive(text){
    let frame
    try { frame = JSON.parse(text) } catch { return }
    if(!Array.isArray(frame)){ return }
    const [joinRef, ref, topic, event, payload] = frame
    if(topic === "phoenix"){ if(ref === this.beatRef){ this.beatRef = null } return }
    for(const channel of this.channels){
      if(channel.topic === topic){ channel.receive(joinRef, ref, event, payload || {}) }
    }
  }

  channel(topic, params = {}){
    const channel = new Channel(this, topic, params)
    this.channels.add(channel)
    return channel
  }
}

class Channel {
  constructor(socket, topic, params){
    this.socket = socket
    this.topic = topic
    this.params = params
    this.handlers = new Map()
    this.replies = new Map()
    this.state = "closed"
    this.joinRef = null
    this.wanted = false
    this.retries = 0
    // Callbacks: onJoin(response), onRefused(response) -> true to keep retrying.
    this.onJoin = () => {}
    this.onRefused = () => false
  }

  on(event, handler){ this.handlers.set(event, handler); return this }

  join(){ this.wanted = true; this.rejoin(); return this }

  rejoin(){
    clearTimeout(this.retryTimer)
    if(!this.wanted || !this.socket.isOpen() || this.state === "joining"){ return }
    const ref = this.socket.makeRef()
    this.joinRef = ref
    this.state = "joining"
    const params = typeof this.params === "function" ? this.params() : this.params
    const timer = setTimeout(() => {
      if(this.replies.delete(ref)){ this.state = "errored"; this.retry() }
    }, PUSH_TIMEOUT_MS)
    this.replies.set(ref, reply => {
      clearTimeout(timer)
      if(reply.status === "ok"){
        this.state = "joined"
        this.retries = 0
        this.onJoin(reply.response || {})
      } else {
        this.state = "errored"
        if(this.onRefused(reply.response || {})){ this.retry() } else { this.wanted = false }
      }
    })
    this.socket.send([ref, ref, this.topic, "phx_join", params])
  }

  retry(){
    clearTimeout(this.retryTimer)
    const wait = REJOIN_MS[this.retries] ?? 10000
    this.retries += 1
    this.retryTimer = setTimeout(() => this.rejoin(), wait)
  }

  leave(){
    this.wanted = false
    clearTimeout(this.retryTimer)
    if(this.state === "joined" || this.state === "joining"){
      this.socket.send([this.joinRef, this.socket.makeRef(), this.topic, "phx_leave", {}])
    }
    this.state = "closed"
    this.socket.channels.delete(this)
  }

  /** Resolves with {status: "ok"|"error"|"timeout", response}. */
  push(event, payload = {}){
    return new Promise(resolve => {
      if(this.state !== "joined"){
        resolve({status: "error", response: {reason: "not connected; try again in a moment"}})
        return
      }
      const ref = this.socket.makeRef()
      const timer = setTimeout(() => {
        if(this.replies.delete(ref)){ resolve({status: "timeout", response: {}}) }
      }, PUSH_TIMEOUT_MS)
      this.replies.set(ref, reply => { clearTimeout(timer); resolve(reply) })
      this.socket.send([this.joinRef, ref, this.topic, event, payload])
    })
  }

  receive(joinRef, ref, event, payload){
    // Replies and pushes for an earlier join of this topic are stale.
    if(joinRef !== null && joinRef !== undefined && joinRef !== this.joinRef){ return }
    if(event === "phx_reply"){
      const reply = this.replies.get(ref)
      if(reply){ this.replies.delete(ref); reply(payload) }
      return
    }
    if(event === "phx_error"){ this.state = "errored"; this.retry(); return }
    if(event === "phx_close"){ this.state = "closed"; return }
    const handler = this.handlers.get(event)
    if(handler){ handler(payload) }
  }

  socketClosed(){
    this.state = "closed"
    for(const reply of this.replies.values()){ reply({status: "error", response: {reason: "disconnected"}}) }
    this.replies.clear()
  }
}

/** Phoenix Presence state: key -> metas, synced from presence_state / presence_diff. */
class Presence {
  constructor(){ this.state = new Map() }

  reset(state){
    this.state = new Map(Object.entries(state).map(([key, v]) => [key, [...(v.metas || [])]]))
  }

  apply({joins = {}, leaves = {}}){
    for(const [key, v] of Object.entries(joins)){
      const metas = this.state.get(key) || []
      const known = new Set(metas.map(m => m.phx_ref))
      this.state.set(key, [...metas, ...(v.metas || []).filter(m => !known.has(m.phx_ref))])
    }
    for(const [key, v] of Object.entries(leaves)){
      const gone = new Set((v.metas || []).map(m => m.phx_ref))
      const metas = (this.state.get(key) || []).filter(m => !gone.has(m.phx_ref))
      if(metas.length){ this.state.set(key, metas) } else { this.state.delete(key) }
    }
  }

  list(){ return [...this.state.entries()].map(([key, metas]) => ({key, metas})) }
}

// ---------------------------------------------------------------------------------------
// Every page: readers online

function readersOnline(socket){
  const set = (here, total) => {
    for(const el of $$("[data-readers-here]")){ el.textContent = here }
    for(const el of $$("[data-readers-total]")){ el.textContent = total }
  }
  const path = document.body.dataset.path || location.pathname
  const channel = socket.channel(`page:${path}`)
  channel.onJoin = r => set(r.readers, r.total)
  channel.on("readers", r => set(r.readers, r.total)).join()
}

// ---------------------------------------------------------------------------------------
// Like buttons: optimistic, rolled back with a message when refused; counts live from
// `likes:<id>` broadcasts, which never touch the viewer's own `liked`.

// A signed-out socket may join only a few channels (the server's --anon-max-channels,
// 10 by default); the page and its stream take two of them.
const LIKE_CHANNELS_MAX = me ? 40 : 6
const likes = new Map() // bookmark id -> {count, liked, pending, since, channel}

function likeState(id, form){
  let s = likes.get(id)
  if(!s){
    form = form || $(`form.like[data-id="${id}"]`)
    s = {
      count: Number(form?.querySelector(".like-count")?.textContent) || 0,
      liked: form?.querySelector(".like-btn")?.getAttribute("aria-pressed") === "true",
      pending: 0,
      broadcastAt: 0,
      channel: null,
    }
    likes.set(id, s)
  }
  return s
}

function renderLikes(id){
  const s = likes.get(id)
  if(!s){ return }
  for(const form of $$(`form.like[data-id="${id}"]`)){
    form.querySelector(".like-count").textContent = s.count
    form.querySelector(".like-btn").setAttribute("aria-pressed", String(s.liked))
    form.elements.liked.value = String(!s.liked)
  }
}

function likeMessage(id, text){
  for(const el of $$(`form.like[data-id="${id}"] .like-msg`)){ el.textContent = text }
}

async function toggleLike(form){
  const id = Number(form.dataset.id)
  if(!me){ location.href = `/login?next=${encodeURIComponent(location.pathname)}`; return }
  const s = likeState(id, form)
  const want = !s.liked
  const delta = want ? 1 : -1
  const started = performance.now()
  s.liked = want
  s.count = Math.max(0, s.count + delta)
  s.pending += 1
  likeMessage(id, "")
  renderLikes(id)
  // Over the joined channel when there is one (the reply is ours alone), else HTTP.
  let answer = null
  let refusal = ""
  if(s.channel?.state === "joined"){
    const reply = await s.channel.push(want ? "like" : "unlike")
    if(reply.status === "ok"){ answer = reply.response } else { refusal = pushError(reply) }
  } else {
    const res = await api(want ? "POST" : "DELETE", `/api/bookmarks/${id}/like`)
    if(res.ok && res.json?.data){ answer = res.json.data } else { refusal = apiError(res) }
  }
  s.pending -= 1
  if(answer){
    s.liked = answer.liked
    // A broadcast that came in meanwhile is at least as new as this answer.
    if(s.broadcastAt < started){ s.count = answer.count }
  } else {
    s.liked = !want
    s.count = Math.max(0, s.count - delta)
    likeMessage(id, refusal)
  }
  renderLikes(id)
}

function joinLikes(socket, id){
  const s = likeState(id)
  if(s.channel || [...likes.values()].filter(x => x.channel).length >= LIKE_CHANNELS_MAX){ return }
  const channel = socket.channel(`likes:${id}`)
  s.channel = channel
  channel.onJoin = r => {
    // The join reply is this viewer's own state: take it unless a click is in flight.
    if(s.pending === 0){ s.count = r.count; s.liked = r.liked; renderLikes(id) }
  }
  channel.onRefused = () => false
  channel.on("like_count", p => {
    s.count = p.count
    s.broadcastAt = performance.now()
    renderLikes(id)
  }).join()
}

function leaveLikes(id){
  const s = likes.get(id)
  if(s?.channel){ s.channel.leave(); s.channel = null }
  if(s && s.pending === 0){ likes.delete(id) }
}

/** Joins `likes:<id>` for bookmarks that stay on screen a moment; leaves when they go. */
function likeWatcher(socket){
  const timers = new Map()
  const watched = new WeakSet()
  const observer = new IntersectionObserver(entries => {
    for(const entry of entries){
      const id = Number(entry.target.dataset.id)
      clearTimeout(timers.get(id))
      timers.set(id, setTimeout(() => {
        timers.delete(id)
        if(entry.isIntersecting){ joinLikes(socket, id) } else { leaveLikes(id) }
      }, entry.isIntersecting ? 600 : 5000))
    }
  })
  return {
    watch(el){ watched.add(el); observer.observe(el) },
    // Under a fast stream most items leave before they are watched: nothing to undo.
    forget(el){
      if(!watched.has(el)){ return }
      watched.delete(el)
      observer.unobserve(el)
      const id = Number(el.dataset.id)
      clearTimeout(timers.get(id))
      timers.delete(id)
      leaveLikes(id)
    },
  }
}

document.addEventListener("submit", event => {
  const form = event.target.closest?.("form.like")
  if(!form){ return }
  event.preventDefault()
  toggleLike(form)
})

// ---------------------------------------------------------------------------------------
// Bookmarks

function buildBookmark(b){
  const li = fromTemplate("tpl-bookmark")
  li.id = `b-${b.id}`
  li.dataset.id = b.id
  const link = li.querySelector(".b-link")
  link.href = b.url
  link.textContent = b.title
  li.querySelector(".b-domain").textContent = domainOf(b.url)
  const desc = li.querySelector(".b-desc")
  desc.textContent = b.description || ""
  desc.hidden = !b.description
  const tags = li.querySelector(".b-tags")
  // Made in the clone's own (the template's) document, so that they are adopted once,
  // with the item, when it goes on the page.
  const doc = li.ownerDocument
  for(const tag of b.tags || []){
    const item = doc.createElement("li")
    const a = doc.createElement("a")
    a.href = `/tags/${encodeURIComponent(tag)}`
    a.textContent = `#${tag}`
    item.append(a)
    tags.append(item)
  }
  li.querySelector(".b-user").textContent = b.user?.username || ""
  setTime(li.querySelector("time"), b.inserted_at)
  li.querySelector(".b-permalink").href = `/bookmarks/${b.id}`
  const form = li.querySelector("form.like")
  form.action = `/bookmarks/${b.id}/like`
  form.dataset.id = b.id
  form.querySelector(".like-count").textContent = b.likes ?? 0
  form.querySelector(".like-btn").setAttribute("aria-pressed", String(Boolean(b.liked)))
  form.elements.liked.value = String(!b.liked)
  return li
}

// The firehose and tag feeds: new bookmarks are queued as they arrive and put on the
// page in the next animation frame, at most FRAME_MAX a frame (oldest first, so the
// newest ends on top; more wait for the next frame, and the queue keeps only the
// newest FEED_MAX). A frame's cost is a fixed part (the list moves: style, layout and
// paint of the viewport) plus a part per item, so small batches every frame keep each
// frame short, where one big batch every few hundred milliseconds made that frame long
// (scripts/bench-page measured both). The list keeps at most FEED_MAX items; while the
// reader is scrolled away they wait behind an "N new" button instead.
// `?flush=batched` is the former fast-stream mode (over FAST_PER_S a second, one batch
// every FAST_BATCH_MS), kept for scripts/bench-page's A/B.
const FEED_MAX = 100
const FRAME_MAX = 6
const FAST_PER_S = 30
const FAST_BATCH_MS = 200

function feedPage(socket){
  const section = $(".feed")
  const list = $("#bookmarks")
  const newButton = $("#new-items")
  const empty = $("#empty")
  const watcher = likeWatcher(socket)
  for(const li of $$(".bookmark", list)){ watcher.watch(li) }
  if(section.dataset.paged === "true"){ return }

  const shown = new Set($$(".bookmark", list).map(li => Number(li.dataset.id)))
  let queue = []
  let held = []
  let heldCount = 0
  let scheduled = false
  let position = null // {seq, epoch} of the last event seen, for recovery after a reconnect

  const scrolledAway = () => list.getBoundingClientRect().top < -40

  const batched = new URLSearchParams(location.search).get("flush") === "batched"
  let lastFlush = 0
  let windowStart = performance.now()
  let windowCount = 0
  let perSecond = 0

  function schedule(){
    if(scheduled){ return }
    scheduled = true
    const wait = !batched || perSecond <= FAST_PER_S ? 0 : lastFlush + FAST_BATCH_MS - performance.now()
    if(wait > 0){ setTimeout(() => requestAnimationFrame(flush), wait) } else { requestAnimationFrame(flush) }
  }

  function countArrival(){
    const now = performance.now()
    if(now - windowStart >= 1000){
      perSecond = windowCount * 1000 / (now - windowStart)
      windowStart = now
      windowCount = 0
    }
    windowCount += 1
  }

  function flush(){
    scheduled = false
    lastFlush = performance.now()
    if(queue.length === 0){ return }
    if(scrolledAway()){
      heldCount += queue.length
      held = held.concat(queue).slice(-FEED_MAX)
      queue = []
      newButton.textContent = `${heldCount} new`
      newButton.hidden = false
      return
    }
    insert(queue.splice(0, batched ? queue.length : FRAME_MAX))
    if(queue.length > 0){ schedule() }
  }

  function insert(events){
    const fresh = events.slice(-FEED_MAX).filter(b => !shown.has(b.id))
    if(fresh.length === 0){ return }
    const frag = document.createDocumentFragment()
    const added = []
    for(let i = fresh.length - 1; i >= 0; i--){
      const li = buildBookmark(fresh[i])
      shown.add(fresh[i].id)
      frag.append(li)
      added.push(li)
    }
    list.prepend(frag)
    // Watched for likes only if still on the page a second later: under a fast stream
    // most items are gone by then, and watching them would cost every frame.
    setTimeout(() => { for(const li of added){ if(li.isConnected){ watcher.watch(li) } } }, 1000)
    const gone = Array.prototype.slice.call(list.children, FEED_MAX)
    if(gone.length > 0){
      for(const li of gone){
        shown.delete(Number(li.dataset.id))
        watcher.forget(li)
      }
      // The tail goes in one range deletion rather than node by node.
      const tail = document.createRange()
      tail.setStartBefore(gone[0])
      tail.setEndAfter(gone.at(-1))
      tail.deleteContents()
    }
    empty.hidden = true
  }

  function showHeld(){
    const batch = held
    held = []
    heldCount = 0
    newButton.hidden = true
    insert(batch)
  }

  newButton.addEventListener("click", () => {
    showHeld()
    list.scrollIntoView({block: "start"})
    window.scrollTo({top: 0})
  })
  window.addEventListener("scroll", () => {
    if(heldCount > 0 && !scrolledAway()){ showHeld() }
  }, {passive: true})

  function created(b){
    countArrival()
    queue.push(b)
    if(queue.length > FEED_MAX){ queue.splice(0, queue.length - FEED_MAX) }
    schedule()
  }

  function deleted(b){
    queue = queue.filter(x => x.id !== b.id)
    held = held.filter(x => x.id !== b.id)
    const li = $(`#b-${b.id}`)
    if(li){ shown.delete(b.id); watcher.forget(li); li.remove() }
  }

  const handle = (event, payload) => {
    if(typeof payload.seq === "number" && position){ position.seq = payload.seq }
    if(event === "bookmark_created"){ created(payload) } else if(event === "bookmark_deleted"){ deleted(payload) }
  }
  const channel = socket.channel(section.dataset.topic, () => ({since: position}))
  channel.onJoin = r => {
    if(position && r.recovered === false){ toast("Reconnected; some bookmarks may have been missed — reload to see them all.") }
    for(const missed of r.missed || []){ handle(missed.event, missed.payload) }
    if(r.epoch){ position = {seq: r.seq ?? 0, epoch: r.epoch} }
  }
  channel.onRefused = () => true
  channel.on("bookmark_created", p => handle("bookmark_created", p))
  channel.on("bookmark_deleted", p => handle("bookmark_deleted", p))
  channel.join()
}

/** Bookmark and discover pages: one or two bookmarks, their likes joined at once. */
function singleBookmarkPage(socket){
  for(const form of $$("form.like")){ joinLikes(socket, Number(form.dataset.id)) }
}

function discoverPage(socket){
  singleBookmarkPage(socket)
  const next = $("#discover-next")
  const list = $("#bookmarks")
  next.addEventListener("click", async event => {
    event.preventDefault()
    const res = await api("GET", "/api/bookmarks/random")
    if(!res.ok){ if(res.status === 404){ toast("No bookmarks yet.") } else { location.href = "/discover" } return }
    const b = res.json.data
    const counts = await api("GET", `/api/bookmarks/${b.id}/likes`)
    if(counts.ok){ b.likes = counts.json.data.count; b.liked = counts.json.data.liked }
    for(const old of $$(".bookmark", list)){ leaveLikes(Number(old.dataset.id)); old.remove() }
    list.append(buildBookmark(b))
    $("#empty").hidden = true
    joinLikes(socket, b.id)
    list.querySelector(".b-link")?.focus()
  })
}

function newBookmarkPage(){
  const form = $("#bookmark-form")
  const code = $("#bookmarklet-code")
  const link = $("#bookmarklet-link")
  if(code && link){ link.href = code.textContent.trim(); link.hidden = false }
  if(!form){ return }
  const touched = new Set()
  let latest = 0
  const show = fields => {
    for(const el of $$(".field-error[data-field]", form)){
      const name = el.dataset.field
      if(!touched.has(name)){ continue }
      el.textContent = (fields[name] || []).join("; ")
      const input = form.elements[name]
      if(input?.setAttribute){ input.setAttribute("aria-invalid", String(Boolean(fields[name]))) }
    }
  }
  const validate = debounce(async () => {
    const ticket = ++latest
    const body = {bookmark: {
      title: form.elements.title.value,
      url: form.elements.url.value,
      description: form.elements.description.value,
      tags: form.elements.tags.value,
      public: form.elements.public.checked,
    }}
    const res = await api("POST", "/bookmarks/validate", body)
    if(ticket === latest && res.ok){ show(res.json.fields || {}) }
  }, 250)
  form.addEventListener("input", event => {
    if(event.target.name){ touched.add(event.target.name) }
    validate()
  })
}

function savedPage(){
  $("#close-window")?.addEventListener("click", () => window.close())
}

// ---------------------------------------------------------------------------------------
// Rooms

function roomsPage(socket){
  if(!me){ return }
  const list = $("#rooms")
  const setCount = (li, n) => {
    li.querySelector(".room-members").textContent = n
    li.querySelector(".room-members-label").textContent = n === 1 ? "member" : "members"
  }
  const fill = (li, room) => {
    li.id = `room-${room.slug}`
    li.dataset.slug = room.slug
    const link = li.querySelector(".room-link")
    link.href = `/rooms/${room.slug}`
    link.textContent = room.name
    const desc = li.querySelector(".room-desc")
    desc.textContent = room.description || ""
    desc.hidden = !room.description
  }
  const channel = socket.channel("rooms:lobby")
  channel.on("room_created", room => {
    if($(`#room-${CSS.escape(room.slug)}`)){ return }
    const li = fromTemplate("tpl-room")
    fill(li, room)
    setCount(li, 1) // its creator
    const membership = li.querySelector("form.room-membership")
    if(membership){
      const mine = room.creator_id === me.id
      membership.action = `/rooms/${room.slug}/${mine ? "leave" : "join"}`
      membership.querySelector("button").textContent = mine ? "Leave" : "Join"
    }
    const after = [...list.children].find(x => x.querySelector(".room-link").textContent.localeCompare(room.name) > 0)
    list.insertBefore(li, after || null)
    $("#empty").hidden = true
  })
  channel.on("room_updated", room => {
    const li = $(`#room-${CSS.escape(room.slug)}`)
    if(li){ fill(li, room) }
  })
  channel.on("room_deleted", room => $(`#room-${CSS.escape(room.slug)}`)?.remove())
  channel.on("room_members", r => {
    const li = $(`#room-${CSS.escape(r.slug)}`)
    if(li){ setCount(li, r.members) }
  })
  channel.join()
}

function buildMessage(m, slug, admin){
  const li = fromTemplate("tpl-message")
  const name = m.user?.username || ""
  li.id = `m-${m.id}`
  li.dataset.id = m.id
  li.dataset.user = m.user?.id
  const mine = me && m.user?.id === me.id
  li.classList.toggle("mine", Boolean(mine))
  const avatar = li.querySelector(".avatar")
  avatar.className = `avatar hue-${hue(name)}`
  avatar.textContent = [...name][0]?.toUpperCase() || "?"
  li.querySelector(".msg-user").textContent = name
  setTime(li.querySelector("time"), m.inserted_at)
  li.querySelector(".msg-body").textContent = m.body
  const box = li.querySelector(".msg-attachment")
  box.replaceChildren()
  if(m.attachment){
    const a = document.createElement("a")
    a.href = m.attachment.url
    if(m.attachment.content_type.startsWith("image/")){
      const img = document.createElement("img")
      img.src = m.attachment.url
      img.alt = m.attachment.original_name || "attachment"
      img.loading = "lazy"
      a.append(img)
    } else {
      a.className = "file"
      a.textContent = `📎 ${m.attachment.original_name || "attachment"}`
    }
    box.append(a)
    box.hidden = false
  } else {
    box.hidden = true
  }
  const del = li.querySelector("form.msg-delete")
  del.action = `/rooms/${slug}/messages/${m.id}/delete`
  del.hidden = !(mine || (admin && me))
  return li
}

function typingText(names){
  if(names.length === 0){ return "" }
  if(names.length === 1){ return `${names[0]} is typing…` }
  if(names.length === 2){ return `${names[0]} and ${names[1]} are typing…` }
  return `${names.length} people are typing…`
}

function roomPage(socket){
  const root = $("#room")
  const slug = root.dataset.slug
  const admin = root.dataset.role === "admin"
  const reading = root.dataset.newer === "true"
  const list = $("#messages")
  const scroller = $("#messages-scroll")
  const empty = $("#empty")
  const shown = new Set($$(".msg", list).map(li => Number(li.dataset.id)))
  let hasOlder = root.dataset.older === "true"
  let loadingOlder = false
  let newer = 0

  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80
  const toBottom = () => { scroller.scrollTop = scroller.scrollHeight }
  const target = root.dataset.target && $(`#m-${root.dataset.target}`)
  if(target){ target.scrollIntoView({block: "center"}) } else { toBottom() }

  function append(m){
    if(shown.has(m.id)){ return }
    const stick = nearBottom()
    shown.add(m.id)
    list.append(buildMessage(m, slug, admin))
    empty.hidden = true
    if(stick || m.user?.id === me?.id){ toBottom() }
  }

  // Presence: one entry per user however many tabs; typing from the metas and events.
  const presence = new Presence()
  const typists = new Map() // username -> expiry timer
  const renderOnline = () => {
    const people = presence.list()
      .map(({key, metas}) => ({key, name: metas[0]?.username || key, tabs: metas.length}))
      .sort((a, b) => a.name.localeCompare(b.name))
    const ul = $("#online")
    ul.replaceChildren(...people.map(p => {
      const li = document.createElement("li")
      const dot = document.createElement("span")
      dot.className = `avatar small hue-${hue(p.name)}`
      dot.setAttribute("aria-hidden", "true")
      dot.textContent = [...p.name][0]?.toUpperCase() || "?"
      li.append(dot, document.createTextNode(` ${p.name}`))
      li.dataset.user = p.key
      return li
    }))
    $("#online-count").textContent = `(${people.length})`
  }
  const renderTyping = () => { $("#typing").textContent = typingText([...typists.keys()].sort()) }
  const typing = (name, on) => {
    clearTimeout(typists.get(name))
    if(on){ typists.set(name, setTimeout(() => { typists.delete(name); renderTyping() }, 6000)) } else { typists.delete(name) }
    renderTyping()
  }

  const channel = socket.channel(`room:${slug}`)
  channel.onJoin = r => {
    if(!reading){ for(const m of r.messages || []){ append(m) } }
  }
  channel.onRefused = r => r.reason !== "unauthorized"
  channel.on("new_message", m => {
    if(m.user){ typing(m.user.username, false) }
    if(reading){
      newer += 1
      const count = $("#newer-count")
      if(count){ count.textContent = `(${newer} new)` }
      return
    }
    append(m)
  })
  channel.on("message_deleted", ({id}) => {
    const li = $(`#m-${id}`)
    if(li){ li.remove(); shown.delete(id) }
  })
  channel.on("user_typing", ({user}) => typing(user.username, true))
  channel.on("user_stopped_typing", ({user}) => typing(user.username, false))
  channel.on("presence_state", state => { presence.reset(state); renderOnline() })
  channel.on("presence_diff", diff => { presence.apply(diff); renderOnline() })
  channel.on("room_deleted", () => toast("This room has been deleted."))
  channel.join()

  // Older messages when scrolled to the top.
  const history = $("#history")
  async function loadOlder(){
    if(loadingOlder || !hasOlder){ return }
    const first = list.querySelector(".msg")
    if(!first){ return }
    loadingOlder = true
    const reply = await channel.push("history", {before: Number(first.dataset.id)})
    loadingOlder = false
    if(reply.status !== "ok"){ return }
    const messages = reply.response.messages || []
    const height = scroller.scrollHeight
    const frag = document.createDocumentFragment()
    for(const m of messages){
      if(!shown.has(m.id)){ shown.add(m.id); frag.append(buildMessage(m, slug, admin)) }
    }
    list.prepend(frag)
    scroller.scrollTop += scroller.scrollHeight - height
    hasOlder = messages.length >= 50
    if(!hasOlder){ history.textContent = "This is the start of the room." }
  }
  scroller.addEventListener("scroll", () => { if(scroller.scrollTop < 60){ loadOlder() } }, {passive: true})
  $("#load-older")?.addEventListener("click", loadOlder)

  // Deleting: the button asks once more before it deletes.
  list.addEventListener("submit", async event => {
    const form = event.target.closest("form.msg-delete")
    if(!form){ return }
    event.preventDefault()
    const button = form.querySelector("button")
    if(button.dataset.armed !== "true"){
      button.dataset.armed = "true"
      button.textContent = "Delete? Click again"
      setTimeout(() => { button.dataset.armed = "false"; button.textContent = "Delete" }, 4000)
      return
    }
    const id = Number(form.closest(".msg").dataset.id)
    const reply = await channel.push("delete_msg", {id})
    if(reply.status !== "ok"){ toast(pushError(reply)) }
  })

  composer(channel)
}

/** The message box: Enter sends, Shift+Enter breaks the line; typing is told (at most
 *  once a second); a file is uploaded as soon as it is chosen, with a progress bar and
 *  a preview, and sent with the next message. */
function composer(channel){
  const form = $("#composer")
  if(!form){ return }
  const text = $("#composer-body")
  const status = $("#composer-status")
  const fileInput = $("#composer-file")
  const box = $("#upload")
  const img = $("#upload-img")
  const progress = $("#upload-progress")
  let upload = null // {id, name, xhr, url}
  let lastTyping = 0
  let sending = false

  $("#attach").hidden = false

  const clearUpload = () => {
    if(upload?.xhr){ upload.xhr.abort() }
    if(upload?.url){ URL.revokeObjectURL(upload.url) }
    upload = null
    fileInput.value = ""
    box.hidden = true
    img.hidden = true
    img.removeAttribute("src")
  }
  $("#upload-remove").addEventListener("click", clearUpload)

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0]
    clearUpload()
    if(!file){ return }
    const url = file.type.startsWith("image/") ? URL.createObjectURL(file) : null
    upload = {id: null, name: file.name, url, xhr: new XMLHttpRequest()}
    box.hidden = false
    if(url){ img.src = url; img.hidden = false }
    $("#upload-name").textContent = file.name
    progress.value = 0
    progress.hidden = false
    const current = upload
    const xhr = current.xhr
    xhr.open("POST", "/api/uploads")
    xhr.setRequestHeader("x-csrf-token", csrf())
    xhr.setRequestHeader("accept", "application/json")
    xhr.upload.addEventListener("progress", e => { if(e.lengthComputable){ progress.value = Math.round(100 * e.loaded / e.total) } })
    xhr.addEventListener("load", () => {
      let json = null
      try { json = JSON.parse(xhr.responseText) } catch { json = null }
      if(upload !== current){ return }
      if(xhr.status === 201 && json?.data){
        current.id = json.data.id
        current.xhr = null
        progress.value = 100
        status.textContent = "Attachment ready."
      } else {
        status.textContent = `Upload failed: ${json?.error?.message || `HTTP ${xhr.status}`}`
        clearUpload()
      }
    })
    xhr.addEventListener("error", () => { if(upload === current){ status.textContent = "Upload failed."; clearUpload() } })
    const body = new FormData()
    body.append("file", file)
    xhr.send(body)
  })

  async function send(){
    if(sending){ return }
    let body = text.value.trim()
    if(upload && !upload.id){ status.textContent = "Wait for the upload to finish."; return }
    if(!body && upload){ body = upload.name }
    if(!body){ return }
    sending = true
    status.textContent = ""
    const payload = {body}
    if(upload?.id){ payload.attachment_id = upload.id }
    const reply = await channel.push("new_msg", payload)
    sending = false
    if(reply.status === "ok"){
      text.value = ""
      clearUpload()
      status.textContent = ""
    } else {
      status.textContent = pushError(reply)
    }
    text.focus()
  }

  text.addEventListener("keydown", event => {
    if(event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing){
      event.preventDefault()
      send()
    }
  })
  text.addEventListener("input", () => {
    const now = Date.now()
    if(text.value.trim() && now - lastTyping > 1000){
      lastTyping = now
      channel.push("typing", {})
    }
  })
  form.addEventListener("submit", event => { event.preventDefault(); send() })
}

// ---------------------------------------------------------------------------------------
// Search: results follow the typing (debounced); matches are <mark>ed text nodes.

const ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": "\"", "&#39;": "'"}

/** The API's highlight (escaped text with <mark> around matches) as DOM nodes. */
function markedNodes(html){
  const nodes = []
  let inMark = false
  for(const part of html.split(/(<mark>|<\/mark>)/)){
    if(part === "<mark>"){ inMark = true; continue }
    if(part === "</mark>"){ inMark = false; continue }
    if(!part){ continue }
    const text = part.replace(/&(amp|lt|gt|quot|#39);/g, e => ENTITIES[e])
    if(inMark){
      const mark = document.createElement("mark")
      mark.textContent = text
      nodes.push(mark)
    } else {
      nodes.push(document.createTextNode(text))
    }
  }
  return nodes
}

function searchPage(){
  const form = $("#search-form")
  const q = $("#search-q")
  const room = $("#search-room")
  const results = $("#results")
  const notice = $("#search-notice")
  const none = $("#no-results")
  let latest = 0
  const run = async () => {
    const ticket = ++latest
    const words = q.value.trim()
    const params = new URLSearchParams({q: words})
    if(room.value){ params.set("room", room.value) }
    history.replaceState(null, "", words ? `/search?${params}` : "/search")
    if(!words){ results.replaceChildren(); none.hidden = true; notice.hidden = true; return }
    const res = await api("GET", `/api/search?${params}&limit=20`)
    if(ticket !== latest){ return }
    if(!res.ok){
      notice.textContent = res.status === 404 ? "No such room." : apiError(res)
      notice.hidden = false
      results.replaceChildren()
      return
    }
    notice.hidden = true
    const hits = res.json.data || []
    none.hidden = hits.length > 0
    results.replaceChildren(...hits.map(hit => {
      const li = document.createElement("li")
      li.className = "result"
      const a = document.createElement("a")
      a.className = "result-link"
      a.href = `/rooms/${encodeURIComponent(hit.room)}?at=${hit.id}#m-${hit.id}`
      const head = document.createElement("span")
      head.className = "result-head"
      const time = document.createElement("time")
      setTime(time, hit.inserted_at)
      head.append(`#${hit.room} · ${hit.user.username} · `, time)
      const body = document.createElement("span")
      body.className = "result-text"
      body.append(...markedNodes(hit.highlight))
      a.append(head, body)
      li.append(a)
      return li
    }))
  }
  const later = debounce(run, 250)
  q.addEventListener("input", later)
  room.addEventListener("change", run)
  form.addEventListener("submit", event => { event.preventDefault(); run() })
}

// ---------------------------------------------------------------------------------------
// Profile: the avatar previews at once, uploads with a progress bar, then becomes the
// avatar.

function profilePage(){
  const form = $("#avatar-form")
  const input = $("#avatar-file")
  const preview = $("#avatar-preview")
  const progress = $("#avatar-progress")
  const error = $("#avatar-error")
  let previewUrl = null
  input.addEventListener("change", () => {
    const file = input.files[0]
    if(previewUrl){ URL.revokeObjectURL(previewUrl); previewUrl = null }
    error.textContent = ""
    if(!file){ return }
    if(!file.type.startsWith("image/")){ error.textContent = "Choose an image (jpg, png, gif or webp)."; return }
    previewUrl = URL.createObjectURL(file)
    preview.src = previewUrl
  })
  form.addEventListener("submit", event => {
    event.preventDefault()
    const file = input.files[0]
    if(!file){ error.textContent = "Choose an image first."; return }
    const xhr = new XMLHttpRequest()
    xhr.open("POST", "/api/uploads")
    xhr.setRequestHeader("x-csrf-token", csrf())
    xhr.setRequestHeader("accept", "application/json")
    progress.hidden = false
    progress.value = 0
    xhr.upload.addEventListener("progress", e => { if(e.lengthComputable){ progress.value = Math.round(100 * e.loaded / e.total) } })
    xhr.addEventListener("load", async () => {
      let json = null
      try { json = JSON.parse(xhr.responseText) } catch { json = null }
      if(xhr.status !== 201){ error.textContent = json?.error?.message || `Upload failed (HTTP ${xhr.status}).`; return }
      const res = await api("PUT", "/api/accounts/me/avatar", {upload_id: json.data.id})
      if(!res.ok){ error.textContent = apiError(res); return }
      const url = res.json.data.user.avatar_url
      preview.src = url
      for(const img of $$(".me .avatar-img")){ img.src = url }
      toast("Avatar saved.")
    })
    xhr.addEventListener("error", () => { error.textContent = "Upload failed." })
    const body = new FormData()
    body.append("file", file)
    xhr.send(body)
  })
}

// ---------------------------------------------------------------------------------------
// Start

const socket = new Socket("/socket")
readersOnline(socket)
const pages = {
  feed: () => feedPage(socket),
  bookmark: () => singleBookmarkPage(socket),
  discover: () => discoverPage(socket),
  "new-bookmark": newBookmarkPage,
  saved: savedPage,
  rooms: () => roomsPage(socket),
  room: () => roomPage(socket),
  search: searchPage,
  profile: profilePage,
}
pages[page]?.()
refreshTimes()
setInterval(refreshTimes, 30000)
socket.connect()
