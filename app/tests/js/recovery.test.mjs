// Recovery after a dropped connection, as a phoenix.js app would do it: the channel's
// join params are a function returning `since: {seq, epoch}` of the last event seen, so
// phoenix.js's automatic rejoin asks for what was missed. Bookmarks keep being created
// while the socket is down; afterwards every one must have been seen exactly once, in
// order, from the `missed` list of the rejoin reply and then the live stream.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {makeDataDir, removeDataDir, startServer} from "./server.mjs"
import {connectSocket, createBookmark, createUser, disconnect, makeChannel} from "./helpers.mjs"

let dataDir, server, client

before(async () => {
  dataDir = await makeDataDir()
  server = await startServer({dataDir})
})

after(async () => {
  if(client){ await disconnect(client) }
  if(server){ await server.stop() }
  if(dataDir){ await removeDataDir(dataDir) }
})

test("a phoenix.js client that loses its socket recovers every missed event exactly once", {timeout: 60_000}, async () => {
  const user = await createUser(server)
  client = await connectSocket(server)
  const seen = [] // bookmark ids, in the order the app saw them
  let position = null // {seq, epoch} of the last event seen
  const channel = makeChannel(client.socket, "bookmarks:firehose", () => ({since: position}))
  const see = payload => {
    seen.push(payload.id)
    position = {seq: payload.seq, epoch: position.epoch}
  }
  channel.on("bookmark_created", see)
  // Handled inside the reply callback, as an app would: the missed events come before
  // any live event that follows the reply.
  channel.joinPush.receive("ok", response => {
    if(response.recovered){
      for(const missed of response.missed){
        assert.equal(missed.event, "bookmark_created")
        see(missed.payload)
      }
    } else {
      position = {seq: response.seq, epoch: response.epoch}
    }
  })
  channel.join()
  const first = await channel.joins.next()
  assert.equal(first.status, "ok")
  assert.equal(first.response.recovered, false, "a fresh client has nothing to recover")

  const created = []
  const create = async i => created.push((await createBookmark(server, user, {title: `r${i}`, url: `https://example.com/r/${i}`})).id)
  for(let i = 0; i < 3; i++){ await create(i) }
  while(seen.length < 3){ await new Promise(r => setTimeout(r, 10)) }

  // Drop the transport under the app (not a clean close: phoenix.js reconnects) and keep
  // creating bookmarks until the channel is back.
  client.socket.conn.close(4001, "simulated network drop")
  await client.closes.next()
  const rejoined = channel.joins.next(15_000)
  let i = 3
  let done = false
  rejoined.then(() => { done = true }, () => { done = true })
  while(!done){ await create(i++) }
  const reply = await rejoined
  assert.equal(reply.status, "ok", JSON.stringify(reply))
  assert.equal(reply.response.recovered, true, JSON.stringify(reply.response))
  assert.ok(reply.response.missed.length > 0, "events were missed while the socket was down")
  for(let k = 0; k < 3; k++){ await create(i++) }
  const deadline = Date.now() + 5000
  while(seen.length < created.length && Date.now() < deadline){ await new Promise(r => setTimeout(r, 10)) }
  assert.ok(created.length > 6, "bookmarks were created while the socket was down")
  assert.deepEqual(seen, created, "every bookmark seen exactly once, in order")
})
