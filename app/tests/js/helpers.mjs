// Shared helpers for the JS compatibility tests: HTTP API calls, phoenix.js sockets and
// channels, and event queues whose waits time out (so a broken server fails, not hangs).

import {Socket} from "phoenix"
import WebSocket from "ws"

/** Default upper bound for any single wait on the server. */
export const WAIT_MS = 5000

let counter = 0
/** A username unique within this test process (3-32 chars of [a-z0-9_]). */
export function uniqueName(prefix = "js"){
  counter += 1
  return `${prefix}_${process.pid % 100000}_${counter}`.slice(0, 32)
}

/** Rejects with a descriptive error when `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what){
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * A FIFO of things that happened (messages, callbacks); `next()` waits for the next one.
 * Nothing is ever dropped, so ordering assertions ("the first event after X is Y") are exact.
 */
export class Inbox {
  constructor(name){
    this.name = name
    this.items = []
    this.waiters = []
    this.count = 0
  }

  push(item){
    this.count += 1
    const waiter = this.waiters.shift()
    if(waiter){ waiter(item) } else { this.items.push(item) }
  }

  /** The next item, waiting at most `ms`. */
  next(ms = WAIT_MS){
    if(this.items.length > 0){ return Promise.resolve(this.items.shift()) }
    let resolveItem
    const item = new Promise(resolve => { resolveItem = resolve })
    this.waiters.push(resolveItem)
    return withTimeout(item, ms, this.name).catch(err => {
      this.waiters = this.waiters.filter(w => w !== resolveItem)
      throw err
    })
  }

  /** Skips items until one satisfies `predicate` (described by `what`), within `ms` overall. */
  async nextMatching(predicate, what, ms = WAIT_MS){
    const deadline = Date.now() + ms
    for(;;){
      let item
      try {
        item = await this.next(Math.max(1, deadline - Date.now()))
      } catch {
        throw new Error(`timed out after ${ms} ms waiting for ${what} (${this.name})`)
      }
      if(predicate(item)){ return item }
    }
  }

  /** Items received and not consumed yet. */
  pending(){ return [...this.items] }
}

// ---------------------------------------------------------------------------------------
// HTTP API

async function postJson(url, body, headers = {}){
  const res = await withTimeout(fetch(url, {
    method: "POST",
    headers: {"content-type": "application/json", accept: "application/json", ...headers},
    body: JSON.stringify(body),
  }), WAIT_MS, `POST ${url}`)
  const text = await res.text()
  let json
  try { json = text ? JSON.parse(text) : undefined } catch { json = undefined }
  return {status: res.status, json, text}
}

function expectCreated(what, res){
  if(res.status !== 201 || !res.json || typeof res.json.data !== "object"){
    throw new Error(`${what}: expected 201 {"data": ...}, got ${res.status} ${res.text}`)
  }
  return res.json.data
}

/** POST /api/users; resolves with {id, username, token}. */
export async function createUser(server, username = uniqueName("user")){
  const data = expectCreated("POST /api/users", await postJson(`${server.url}/api/users`, {username}))
  if(typeof data.token !== "string" || data.token.length === 0){
    throw new Error(`POST /api/users: no token in ${JSON.stringify(data)}`)
  }
  return data
}

/** POST /api/bookmarks as `user`; resolves with the created bookmark (the response's data). */
export async function createBookmark(server, user, bookmark){
  const res = await postJson(`${server.url}/api/bookmarks`, {bookmark},
    {authorization: `Bearer ${user.token}`})
  return expectCreated("POST /api/bookmarks", res)
}

// ---------------------------------------------------------------------------------------
// phoenix.js

/**
 * A phoenix.js Socket over the `ws` package (Node 20 has no stable global WebSocket), with
 * inboxes recording its lifecycle: `opens`, `closes` (CloseEvent), `errors`, `messages`
 * (every decoded message {join_ref, ref, topic, event, payload}). Not connected yet.
 */
export function makeSocket(server, opts = {}){
  const socket = new Socket(server.wsUrl, {transport: WebSocket, ...opts})
  const events = {
    opens: new Inbox("socket open"),
    closes: new Inbox("socket close"),
    errors: new Inbox("socket error"),
    messages: new Inbox("socket message"),
  }
  socket.onOpen(() => events.opens.push(Date.now()))
  socket.onClose(event => events.closes.push(event))
  socket.onError(error => events.errors.push(error))
  socket.onMessage(msg => events.messages.push(msg))
  return {socket, ...events}
}

/** makeSocket + connect, resolving once the WebSocket is open. */
export async function connectSocket(server, opts = {}){
  const client = makeSocket(server, opts)
  const {socket} = client
  const refs = []
  const opened = new Promise((resolve, reject) => {
    refs.push(socket.onOpen(resolve))
    refs.push(socket.onError(err => reject(new Error(`socket failed to connect to ${server.wsUrl}: ${describeError(err)}`))))
  })
  socket.connect()
  try {
    await withTimeout(opened, WAIT_MS, `socket open (${server.wsUrl})`)
  } catch(err){
    socket.disconnect()
    throw err
  } finally {
    socket.off(refs)
  }
  return client
}

/** Disconnects and waits (bounded) for the transport to finish closing. */
export function disconnect(client){
  return withTimeout(new Promise(resolve => client.socket.disconnect(resolve)), WAIT_MS, "socket disconnect")
}

/** Text of a transport error event (ws ErrorEvent or Error). */
export function describeError(err){
  if(!err){ return String(err) }
  return err.message || (err.error && err.error.message) || String(err)
}

/**
 * Creates a channel and records every reply to its join push (including automatic rejoins)
 * as {status, response, joinRef} in `channel.joins`, and every phx_error/phx_close in
 * `channel.errors` / `channel.closes`. Call `channel.join()` afterwards.
 */
export function makeChannel(socket, topic, params = {}){
  const channel = socket.channel(topic, params)
  const joins = new Inbox(`join reply on ${topic}`)
  for(const status of ["ok", "error", "timeout"]){
    channel.joinPush.receive(status, response => joins.push({status, response, joinRef: channel.joinRef()}))
  }
  const errors = new Inbox(`channel error on ${topic}`)
  const closes = new Inbox(`channel close on ${topic}`)
  channel.onError(reason => errors.push(reason))
  channel.onClose(reason => closes.push(reason))
  return Object.assign(channel, {joins, errors, closes})
}

/** makeChannel + join; resolves with the first join reply {status, response, joinRef}. */
export async function joinChannel(socket, topic, params = {}){
  const channel = makeChannel(socket, topic, params)
  channel.join()
  const reply = await channel.joins.next(WAIT_MS)
  return {channel, reply}
}

/** Joins `topic` and insists on "ok"; resolves with the channel. */
export async function joinOk(socket, topic, params = {}){
  const {channel, reply} = await joinChannel(socket, topic, params)
  if(reply.status !== "ok"){
    throw new Error(`join ${topic}: expected ok, got ${reply.status} ${JSON.stringify(reply.response)}`)
  }
  return channel
}

/** An inbox of the payloads of `event` on `channel`. */
export function listen(channel, event){
  const inbox = new Inbox(`"${event}" on ${channel.topic}`)
  channel.on(event, payload => inbox.push(payload))
  return inbox
}

// ---------------------------------------------------------------------------------------
// Raw WebSocket (for frames phoenix.js cannot produce, e.g. the V1 serializer)

/**
 * Opens a raw `ws` connection to /socket/websocket with `query` (a string, without "?");
 * resolves with {ws, frames: Inbox of parsed JSON text frames, closes: Inbox of codes, send(obj)}.
 */
export async function rawConnect(server, query = ""){
  const url = `${server.wsUrl}/websocket${query ? `?${query}` : ""}`
  const ws = new WebSocket(url)
  const frames = new Inbox(`frame on ${url}`)
  const closes = new Inbox(`close of ${url}`)
  ws.on("message", (data, isBinary) => {
    if(isBinary){
      frames.push({binary: Buffer.from(data)})
    } else {
      const text = data.toString()
      let parsed
      try { parsed = JSON.parse(text) } catch { parsed = {unparseable: text} }
      frames.push(parsed)
    }
  })
  ws.on("close", code => closes.push(code))
  await withTimeout(new Promise((resolve, reject) => {
    ws.once("open", resolve)
    ws.once("error", reject)
  }), WAIT_MS, `raw WebSocket open ${url}`)
  return {ws, frames, closes, send: obj => ws.send(JSON.stringify(obj)), close: () => closeRaw(ws)}
}

function closeRaw(ws){
  if(ws.readyState === WebSocket.CLOSED){ return Promise.resolve() }
  const closed = new Promise(resolve => ws.once("close", resolve))
  ws.close(1000)
  return withTimeout(closed, WAIT_MS, "raw WebSocket close").catch(() => ws.terminate())
}
