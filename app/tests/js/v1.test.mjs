// The V1 serializer (JSON objects), selected by vsn=1.0.0 or by no vsn at all.
//
// phoenix.js 1.8's default serializer always encodes V2 arrays, whatever `vsn` says, so the
// wire shapes are checked with a raw `ws` client; a phoenix.js Socket with a V1 object
// encoder/decoder (what phoenix.js < 1.4 sent) is checked as well.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {startServer} from "./server.mjs"
import {connectSocket, createBookmark, createUser, disconnect, joinOk, listen, rawConnect} from "./helpers.mjs"

const FIREHOSE = "bookmarks:firehose"
const V1_KEYS = ["event", "payload", "ref", "topic"] // the server never sends join_ref in V1

let server, user

before(async () => {
  server = await startServer()
  user = await createUser(server)
})

after(async () => {
  if(server){ await server.stop() }
})

function assertV1Reply(frame, {topic, ref}){
  assert.deepEqual(Object.keys(frame).sort(), V1_KEYS, `V1 reply keys: ${JSON.stringify(frame)}`)
  assert.equal(frame.event, "phx_reply")
  assert.equal(frame.topic, topic)
  assert.equal(frame.ref, ref)
  assert.equal(frame.payload.status, "ok", `reply: ${JSON.stringify(frame)}`)
  assert.equal(typeof frame.payload.response, "object")
}

for(const [label, query] of [["vsn=1.0.0", "vsn=1.0.0"], ["no vsn", ""]]){
  test(`raw V1 client (${label}): join, heartbeat and broadcast are JSON objects`, async () => {
    const raw = await rawConnect(server, query)
    try {
      raw.send({topic: FIREHOSE, event: "phx_join", payload: {}, ref: "1"})
      assertV1Reply(await raw.frames.next(), {topic: FIREHOSE, ref: "1"})

      raw.send({topic: "phoenix", event: "heartbeat", payload: {}, ref: "2"})
      const heartbeat = await raw.frames.next()
      assertV1Reply(heartbeat, {topic: "phoenix", ref: "2"})
      assert.deepEqual(heartbeat.payload.response, {})

      const bookmark = await createBookmark(server, user, {
        title: `v1 ${label}`, url: "https://example.com/v1", tags: ["V1"],
      })
      const broadcast = await raw.frames.next()
      assert.deepEqual(Object.keys(broadcast).sort(), V1_KEYS, `V1 broadcast keys: ${JSON.stringify(broadcast)}`)
      assert.equal(broadcast.event, "bookmark_created")
      assert.equal(broadcast.topic, FIREHOSE)
      assert.equal(broadcast.ref, null)
      assert.equal(broadcast.payload.id, bookmark.id)
      assert.equal(broadcast.payload.title, bookmark.title)
      assert.deepEqual(broadcast.payload.tags, ["v1"])
      assert.equal(broadcast.payload.user.username, user.username)
      assert.ok(Number.isSafeInteger(broadcast.payload.seq), `seq: ${broadcast.payload.seq}`)
    } finally {
      await raw.close()
    }
  })
}

test("phoenix.js with a V1 object serializer (vsn 1.0.0) joins and receives broadcasts", async () => {
  const client = await connectSocket(server, {
    vsn: "1.0.0",
    encode: (msg, callback) => callback(JSON.stringify(msg)),
    decode: (raw, callback) => callback(JSON.parse(raw)),
  })
  try {
    const channel = await joinOk(client.socket, FIREHOSE)
    const created = listen(channel, "bookmark_created")
    const bookmark = await createBookmark(server, user, {title: "v1 phoenix.js", url: "https://example.com/v1js"})
    const event = await created.next()
    assert.equal(event.id, bookmark.id)
    const frame = client.messages.pending().find(m => m.event === "bookmark_created")
    assert.ok(frame && !("join_ref" in frame), `V1 broadcast has no join_ref: ${JSON.stringify(frame)}`)
  } finally {
    await disconnect(client)
  }
})
