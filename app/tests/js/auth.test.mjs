// Connect-time authentication. phoenix.js 1.8's `authToken` option sends
// `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.<base64 token>`: the server must
// accept a good token and select the `phoenix` subprotocol (the `ws` client, like browsers,
// fails a connection whose server selects none), and refuse a bad token with HTTP 403 before
// the upgrade. A `token` connect param in the query string is checked the same way.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {startServer} from "./server.mjs"
import {
  connectSocket, createUser, describeError, disconnect, joinOk, makeChannel, makeSocket,
} from "./helpers.mjs"

const FIREHOSE = "bookmarks:firehose"

let server, user

before(async () => {
  server = await startServer()
  user = await createUser(server)
})

after(async () => {
  if(server){ await server.stop() }
})

async function assertConnectsAndJoins(opts, {subprotocol}){
  const client = await connectSocket(server, opts)
  try {
    assert.equal(client.socket.conn.protocol, subprotocol, "selected subprotocol")
    const channel = await joinOk(client.socket, FIREHOSE)
    assert.equal(channel.state, "joined")
  } finally {
    await disconnect(client)
  }
}

/** The upgrade is refused with 403 on the first try and on phoenix.js's automatic retry. */
async function assertRefused(opts){
  const client = makeSocket(server, opts)
  const channel = makeChannel(client.socket, FIREHOSE)
  channel.join() // buffered until a connection opens, which must never happen
  client.socket.connect()
  try {
    for(const attempt of ["first attempt", "reconnect attempt"]){
      const error = await client.errors.next()
      assert.match(describeError(error), /\b403\b/, `${attempt}: expected an HTTP 403 refusal`)
    }
    assert.equal(client.opens.count, 0, "the WebSocket never opened")
    assert.equal(channel.joins.count, 0, "no join reply")
    assert.notEqual(channel.state, "joined")
  } finally {
    await disconnect(client)
  }
}

test("authToken (Sec-WebSocket-Protocol) with a valid token connects with subprotocol phoenix and joins", async () => {
  await assertConnectsAndJoins({authToken: user.token}, {subprotocol: "phoenix"})
})

test("authToken with a garbage token is refused with 403 and never joins", async () => {
  await assertRefused({authToken: "garbage"})
})

test("token connect param with a valid token connects and joins", async () => {
  await assertConnectsAndJoins({params: {token: user.token}}, {subprotocol: ""})
})

test("token connect param with a garbage token is refused with 403 and never joins", async () => {
  await assertRefused({params: {token: "garbage"}})
})
