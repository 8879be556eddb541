// phoenix.js (default vsn 2.0.0) joins the firehose and a tag topic; bookmarks created over
// HTTP arrive as `bookmark_created` broadcasts with normalised tags and a per-topic seq.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {startServer} from "./server.mjs"
import {connectSocket, createBookmark, createUser, disconnect, joinChannel, listen} from "./helpers.mjs"

const FIREHOSE = "bookmarks:firehose"
const ELIXIR = "bookmarks:tag:elixir"

let server, user, client

before(async () => {
  server = await startServer()
  user = await createUser(server)
  client = await connectSocket(server)
})

after(async () => {
  if(client){ await disconnect(client) }
  if(server){ await server.stop() }
})

/** The broadcast must describe the bookmark the HTTP API created. */
function assertEventFor(event, created, tags){
  assert.equal(event.id, created.id, "id")
  assert.equal(event.title, created.title, "title")
  assert.equal(event.url, created.url, "url")
  assert.equal(event.description, created.description, "description")
  assert.deepEqual(event.tags, tags, "tags are normalised")
  assert.deepEqual(event.user, {id: user.id, username: user.username}, "user")
  assert.equal(typeof event.inserted_at, "string", "inserted_at")
  assert.ok(!Number.isNaN(Date.parse(event.inserted_at)), `inserted_at parses: ${event.inserted_at}`)
  assert.equal(event.inserted_at, created.inserted_at, "inserted_at matches the HTTP response")
  assert.ok(Number.isSafeInteger(event.seq) && event.seq >= 1, `numeric seq: ${event.seq}`)
}

/** Tracks one topic's broadcasts: each must be the expected bookmark with seq = previous + 1. */
function sequenceOf(channel){
  const inbox = listen(channel, "bookmark_created")
  let lastSeq = 0 // a fresh server: the first broadcast on a topic has seq 1
  return async function expectNext(created, tags){
    const event = await inbox.next()
    assert.equal(event.id, created.id,
      `${channel.topic}: expected bookmark ${created.id} (${created.title}) next, got ${JSON.stringify(event)}`)
    assertEventFor(event, created, tags)
    assert.equal(event.seq, lastSeq + 1, `${channel.topic}: seq increments by exactly 1`)
    lastSeq = event.seq
    return event
  }
}

test("bookmark_created reaches the firehose and tag channels, private and other-tag ones do not", async () => {
  const {channel: firehose, reply: firehoseReply} = await joinChannel(client.socket, FIREHOSE)
  const {channel: elixir, reply: elixirReply} = await joinChannel(client.socket, ELIXIR)
  assert.equal(firehoseReply.status, "ok", `join ${FIREHOSE}: ${JSON.stringify(firehoseReply)}`)
  assert.equal(elixirReply.status, "ok", `join ${ELIXIR}: ${JSON.stringify(elixirReply)}`)
  assert.equal(typeof firehoseReply.response, "object")
  assert.equal(firehose.state, "joined")
  assert.equal(elixir.state, "joined")

  const onFirehose = sequenceOf(firehose)
  const onElixir = sequenceOf(elixir)

  // tags as a comma-separated string
  const fromString = await createBookmark(server, user, {
    title: "Phoenix", url: "https://phoenixframework.org", description: "tags as a string",
    tags: " Elixir, web ",
  })
  await onFirehose(fromString, ["elixir", "web"])
  await onElixir(fromString, ["elixir", "web"])

  // tags as a list, needing trimming, lowercasing and deduplication
  const fromList = await createBookmark(server, user, {
    title: "Elixir", url: "https://elixir-lang.org", description: "tags as a list",
    tags: ["Elixir", " web", "ELIXIR"],
  })
  await onFirehose(fromList, ["elixir", "web"])
  await onElixir(fromList, ["elixir", "web"])

  // another tag: on the firehose only
  const rust = await createBookmark(server, user, {
    title: "Rust", url: "https://www.rust-lang.org", description: "other tag", tags: ["rust"],
  })
  await onFirehose(rust, ["rust"])

  // private: on neither; the next event on both topics must be the public one created after it
  const secret = await createBookmark(server, user, {
    title: "Secret", url: "https://example.com/secret", description: "private", tags: "elixir",
    public: false,
  })
  assert.equal(secret.public, false)
  const visible = await createBookmark(server, user, {
    title: "Visible", url: "https://example.com/visible", description: "public", tags: "elixir",
  })
  await onFirehose(visible, ["elixir"])
  await onElixir(visible, ["elixir"]) // a leaked "rust" or "secret" event would have come first

  // broadcasts are fastlaned: join_ref and ref are null on the wire
  const broadcasts = client.messages.pending().filter(m => m.event === "bookmark_created")
  assert.equal(broadcasts.length, 7, "4 on the firehose + 3 on the tag topic")
  for(const frame of broadcasts){
    assert.equal(frame.join_ref, null, `broadcast join_ref: ${JSON.stringify(frame)}`)
    assert.equal(frame.ref, null, `broadcast ref: ${JSON.stringify(frame)}`)
  }
})
