// phoenix.js heartbeats (here every 200 ms) are answered, so the client keeps the socket:
// phoenix.js closes and reconnects a socket whose heartbeat goes unanswered.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {startServer} from "./server.mjs"
import {connectSocket, disconnect, joinOk, WAIT_MS} from "./helpers.mjs"

const HEARTBEAT_MS = 200
const KEEP_OPEN_MS = 2000

let server, client

before(async () => {
  server = await startServer()
  client = await connectSocket(server, {heartbeatIntervalMs: HEARTBEAT_MS})
})

after(async () => {
  if(client){ await disconnect(client) }
  if(server){ await server.stop() }
})

test(`heartbeats every ${HEARTBEAT_MS} ms are answered for ${KEEP_OPEN_MS} ms`, async () => {
  const opened = Date.now()
  const channel = await joinOk(client.socket, "bookmarks:firehose")

  const isHeartbeatReply = m => m.topic === "phoenix" && m.event === "phx_reply"
  const replies = []
  while(Date.now() - opened < KEEP_OPEN_MS){
    const reply = await client.messages.nextMatching(isHeartbeatReply, "a heartbeat reply", WAIT_MS)
    assert.equal(reply.join_ref, null, `heartbeat reply: ${JSON.stringify(reply)}`)
    assert.equal(reply.payload.status, "ok", `heartbeat reply: ${JSON.stringify(reply)}`)
    assert.deepEqual(reply.payload.response, {})
    replies.push(reply)
  }

  // about one reply per interval; each answers a distinct heartbeat
  assert.ok(replies.length >= Math.floor(KEEP_OPEN_MS / HEARTBEAT_MS) - 2,
    `only ${replies.length} heartbeat replies in ${Date.now() - opened} ms`)
  assert.equal(new Set(replies.map(r => r.ref)).size, replies.length, "distinct heartbeat refs")

  assert.equal(client.closes.count, 0, "the socket never closed")
  assert.equal(client.errors.count, 0, "the socket never errored")
  assert.equal(client.opens.count, 1, "no reconnect happened")
  assert.ok(client.socket.isConnected())
  assert.equal(channel.state, "joined")
  assert.equal(channel.errors.count, 0)
})
