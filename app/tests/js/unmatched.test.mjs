// Joining a topic no channel handles is refused with {reason: "unmatched topic"}.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {startServer} from "./server.mjs"
import {connectSocket, disconnect, joinChannel} from "./helpers.mjs"

let server, client

before(async () => {
  server = await startServer()
  client = await connectSocket(server)
})

after(async () => {
  if(client){ await disconnect(client) }
  if(server){ await server.stop() }
})

test("join of an unmatched topic replies error {reason: \"unmatched topic\"}", async () => {
  const {channel, reply} = await joinChannel(client.socket, "nope:x")
  assert.equal(reply.status, "error", `join reply: ${JSON.stringify(reply)}`)
  assert.deepEqual(reply.response, {reason: "unmatched topic"})
  assert.equal(channel.state, "errored")

  // on the wire the reply carries a null join_ref, as Phoenix's does
  const frame = await client.messages.nextMatching(
    m => m.topic === "nope:x" && m.event === "phx_reply", "the phx_reply frame on nope:x")
  assert.equal(frame.join_ref, null, `reply frame: ${JSON.stringify(frame)}`)
  assert.equal(frame.ref, reply.joinRef, "reply ref is the join's ref")

  // the socket itself lives on
  assert.ok(client.socket.isConnected())
  assert.equal(client.closes.count, 0)
})
