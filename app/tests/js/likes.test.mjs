// Likes with phoenix.js, the way an app's like button uses them: each client keeps
// {count, liked} from its join reply of `likes:<id>`, takes its own `liked` only from the
// reply to its own push, and takes only `count` from `like_count` broadcasts. Two clients
// join; one likes and unlikes; both follow the count, and the other client's `liked` is
// never touched (the broadcast does not even carry one).

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {startServer} from "./server.mjs"
import {connectSocket, createBookmark, createUser, disconnect, joinChannel, listen, withTimeout} from "./helpers.mjs"

let server, liker, other, clients = []

before(async () => {
  server = await startServer()
  liker = await createUser(server)
  other = await createUser(server)
})

after(async () => {
  for(const client of clients){ await disconnect(client) }
  if(server){ await server.stop() }
})

/** channel.push(event) resolved with the reply {status, response}. */
function pushReply(channel, event, payload = {}){
  return withTimeout(new Promise(resolve => {
    const push = channel.push(event, payload)
    for(const status of ["ok", "error", "timeout"]){
      push.receive(status, response => resolve({status, response}))
    }
  }), 5000, `reply to ${event} on ${channel.topic}`)
}

/** A like button's state on one client, fed the way an app would feed it. */
async function likeButton(user, bookmarkId){
  const client = await connectSocket(server, {params: {token: user.token}})
  clients.push(client)
  const {channel, reply} = await joinChannel(client.socket, `likes:${bookmarkId}`)
  assert.equal(reply.status, "ok", JSON.stringify(reply))
  const state = {...reply.response}
  const counts = listen(channel, "like_count")
  const broadcasts = []
  channel.on("like_count", payload => {
    broadcasts.push(payload)
    state.count = payload.count // only the public count; `liked` is personal
  })
  return {channel, state, counts, broadcasts}
}

test("a like reaches both clients as a count; only the liker's reply says liked", async () => {
  const owner = await createUser(server)
  const bookmark = await createBookmark(server, owner, {title: "Like me", url: "https://example.com/like-me"})
  // The other user already likes it.
  const res = await fetch(`${server.url}/api/bookmarks/${bookmark.id}/like`, {
    method: "POST", headers: {authorization: `Bearer ${other.token}`},
  })
  assert.equal(res.status, 200)
  assert.deepEqual((await res.json()).data, {bookmark_id: bookmark.id, count: 1, liked: true})

  const mine = await likeButton(liker, bookmark.id)
  const theirs = await likeButton(other, bookmark.id)
  assert.deepEqual(mine.state, {count: 1, liked: false}, "join reply for the liker")
  assert.deepEqual(theirs.state, {count: 1, liked: true}, "join reply for the other user")

  const liked = await pushReply(mine.channel, "like")
  assert.deepEqual(liked, {status: "ok", response: {count: 2, liked: true}})
  mine.state = {...mine.state, ...liked.response}
  const [a, b] = [await mine.counts.next(), await theirs.counts.next()]
  assert.deepEqual(a, b, "the same broadcast for everyone")
  assert.deepEqual(Object.keys(a).sort(), ["bookmark_id", "count", "seq"], "no liked in a broadcast")
  assert.equal(a.bookmark_id, bookmark.id)
  assert.equal(a.count, 2)
  assert.ok(Number.isSafeInteger(a.seq) && a.seq >= 1, `seq ${a.seq}`)
  assert.deepEqual(mine.state, {count: 2, liked: true})
  assert.deepEqual(theirs.state, {count: 2, liked: true}, "the other client's liked is untouched")

  // A double like: the same answer and no broadcast.
  assert.deepEqual(await pushReply(mine.channel, "like"), {status: "ok", response: {count: 2, liked: true}})

  const unliked = await pushReply(mine.channel, "unlike")
  assert.deepEqual(unliked, {status: "ok", response: {count: 1, liked: false}})
  mine.state = {...mine.state, ...unliked.response}
  const [c, d] = [await mine.counts.next(), await theirs.counts.next()]
  assert.deepEqual(c, d)
  assert.equal(c.count, 1)
  assert.equal(c.seq, a.seq + 1, "the double like broadcast nothing")
  assert.deepEqual(mine.state, {count: 1, liked: false})
  assert.deepEqual(theirs.state, {count: 1, liked: true}, "still liked by the other user")
  assert.equal(theirs.broadcasts.length, 2)
})

test("an anonymous client sees the count but may not like", async () => {
  const owner = await createUser(server)
  const bookmark = await createBookmark(server, owner, {title: "Watch me", url: "https://example.com/watch-me"})
  const client = await connectSocket(server)
  clients.push(client)
  const {channel, reply} = await joinChannel(client.socket, `likes:${bookmark.id}`)
  assert.deepEqual(reply.response, {count: 0, liked: false})
  assert.deepEqual(await pushReply(channel, "like"), {status: "error", response: {reason: "unauthorized"}})
  const refused = await joinChannel(client.socket, "likes:abc")
  assert.deepEqual(refused.reply, {status: "error", response: {reason: "invalid topic"}, joinRef: refused.reply.joinRef})
  refused.channel.leave()
})
