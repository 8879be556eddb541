// The server goes away under a joined phoenix.js client (SIGTERM) and a new server comes up
// on the same port and data dir: phoenix.js must reconnect with its own backoff, rejoin the
// channel with a new join ref, and receive broadcasts again.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {makeDataDir, removeDataDir, startServer, startServerOnPort} from "./server.mjs"
import {connectSocket, createBookmark, createUser, disconnect, listen, makeChannel} from "./helpers.mjs"

// phoenix.js's default reconnect backoff reaches 1 s after ~1.3 s of failed tries and then
// 2 s and 5 s, so allow for a slow restart plus one long backoff step.
const REJOIN_WITHIN_MS = 15_000

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

test("phoenix.js reconnects and rejoins after the server restarts", {timeout: 60_000}, async () => {
  const user = await createUser(server)
  client = await connectSocket(server) // default reconnectAfterMs / rejoinAfterMs
  const channel = makeChannel(client.socket, "bookmarks:firehose")
  const created = listen(channel, "bookmark_created")
  channel.join()

  const firstJoin = await channel.joins.next()
  assert.equal(firstJoin.status, "ok", `first join: ${JSON.stringify(firstJoin)}`)
  const earlier = await createBookmark(server, user, {title: "before", url: "https://example.com/before"})
  assert.equal((await created.next()).id, earlier.id)

  // the server goes away: the socket closes and the channel errors
  const port = server.port
  const stopped = await server.stop()
  server = null
  const closeEvent = await client.closes.next()
  const channelError = await channel.errors.next()
  assert.deepEqual(channelError, {source: "transport", reason: "connection_closed"})
  assert.notEqual(channel.state, "joined")

  // a new server on the same port and data dir: phoenix.js reconnects and rejoins by itself
  server = await startServerOnPort(port, dataDir)
  const rejoin = await channel.joins.next(REJOIN_WITHIN_MS)
  assert.equal(rejoin.status, "ok", `rejoin: ${JSON.stringify(rejoin)}`)
  assert.notEqual(rejoin.joinRef, firstJoin.joinRef, "the rejoin uses a new join ref")
  assert.equal(channel.state, "joined")
  assert.equal(channel.joinRef(), rejoin.joinRef)
  assert.equal(client.opens.count, 2, "one reconnect")
  assert.ok(client.socket.isConnected())

  // the rejoined channel receives broadcasts; the token survived the restart with the data dir
  const later = await createBookmark(server, user, {title: "after", url: "https://example.com/after"})
  const event = await created.next()
  assert.equal(event.id, later.id, `first event after the rejoin: ${JSON.stringify(event)}`)
  assert.equal(event.title, "after")

  // the shutdown was graceful: exit 0 and a "service restart" close for the client
  assert.deepEqual(stopped, {code: 0, signal: null}, "firehose exits 0 on SIGTERM")
  assert.equal(closeEvent.code, 1012, `close code on server shutdown (reason ${JSON.stringify(closeEvent.reason)})`)
})
