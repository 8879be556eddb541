// Two firehose nodes on one PostgreSQL database and one Redis broker, with the official
// phoenix.js client: a broadcast made on either node reaches listeners on both with the
// same cluster-wide `seq`; chat, typing, room presence and page readers cross nodes;
// recovery works from the other node; what was acknowledged is in PostgreSQL after both
// nodes stop.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {execFile} from "node:child_process"
import {promisify} from "node:util"

import {REDIS, startCluster} from "./cluster.mjs"
import {connectSocket, createBookmark, createUser, disconnect, joinChannel, joinOk, listen, makeChannel, uniqueName, WAIT_MS} from "../helpers.mjs"

const FIREHOSE = "bookmarks:firehose"
const run = promisify(execFile)

let cluster, a, b, user
const clients = []

async function socketTo(node, params = {}){
  const client = await connectSocket(node, {params})
  clients.push(client)
  return client
}

/** Creates a room (public unless `fields` say otherwise) on `node` owned by `owner`; resolves with its slug. */
async function createRoom(node, owner, prefix, fields = {}){
  const slug = uniqueName(prefix).replace(/_/g, "-")
  const created = await fetch(`${node.url}/api/rooms`, {
    method: "POST",
    headers: {"content-type": "application/json", authorization: `Bearer ${owner.token}`},
    body: JSON.stringify({name: `Room ${slug}`, slug, ...fields}),
  })
  assert.equal(created.status, 201, await created.text())
  return slug
}

/** `method` `path` on `node` as `user` with a JSON body; resolves with the response. */
function call(node, user, method, path, body){
  const headers = {authorization: `Bearer ${user.token}`}
  if(body !== undefined){ headers["content-type"] = "application/json" }
  return fetch(`${node.url}${path}`, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)})
}

/** Asserts `response` has `status`; resolves with its JSON body (null when empty). */
async function expectStatus(response, status){
  const text = await response.text()
  assert.equal(response.status, status, text)
  return text ? JSON.parse(text) : null
}

/** A public room made on node A by `user` (Alice) that Bob, signed up on node B, joined there. */
async function roomWithBob(prefix){
  const bob = await createUser(b)
  const slug = await createRoom(a, user, prefix)
  await expectStatus(await call(b, bob, "POST", `/api/rooms/${slug}/join`), 201)
  return {alice: user, bob, slug}
}

/** A presence_state's usernames, sorted. */
function names(state){
  return Object.values(state).flatMap(entry => entry.metas.map(meta => meta.username)).sort()
}

before(async () => {
  cluster = await startCluster(2)
  ;[a, b] = cluster.nodes
  user = await createUser(a)
})

after(async () => {
  for(const client of clients){ await disconnect(client).catch(() => {}) }
  if(cluster){ await cluster.stop() }
})

test("a bookmark posted to either node reaches listeners on both, with one seq sequence", async () => {
  const onA = listen(await joinOk((await socketTo(a)).socket, FIREHOSE), "bookmark_created")
  const onB = listen(await joinOk((await socketTo(b)).socket, FIREHOSE), "bookmark_created")
  const tag = uniqueName("tag").replace(/_/g, "")
  const onTagB = listen(await joinOk((await socketTo(b)).socket, `bookmarks:tag:${tag}`), "bookmark_created")
  const posted = []
  for(let i = 0; i < 6; i++){
    const node = i % 2 === 0 ? a : b
    posted.push(await createBookmark(node, user, {title: `cluster ${i}`, url: `https://example.com/${i}`, tags: [tag]}))
  }
  const seen = {a: [], b: [], tag: []}
  for(let i = 0; i < posted.length; i++){
    seen.a.push(await onA.next(WAIT_MS))
    seen.b.push(await onB.next(WAIT_MS))
    seen.tag.push(await onTagB.next(WAIT_MS))
  }
  assert.deepEqual(seen.a.map(e => e.id), posted.map(p => p.id), "node A's listener: every bookmark, in order")
  assert.deepEqual(seen.b.map(e => e.id), posted.map(p => p.id), "node B's listener: every bookmark, in order")
  assert.deepEqual(seen.a.map(e => e.seq), seen.b.map(e => e.seq), "the same seq for the same event on both nodes")
  for(let i = 1; i < posted.length; i++){
    assert.equal(seen.a[i].seq, seen.a[i - 1].seq + 1, "seq grows by one across both nodes' writes")
  }
  assert.deepEqual(seen.tag.map(e => e.seq), [1, 2, 3, 4, 5, 6], "a new tag's topic counts from 1, cluster-wide")
})

test("a listener that moves to the other node recovers what it missed there", async () => {
  const first = await socketTo(a)
  const {channel, reply: joined} = await joinChannel(first.socket, FIREHOSE, {since: null})
  assert.equal(joined.status, "ok")
  const epoch = joined.response.epoch
  const events = listen(channel, "bookmark_created")
  const before = await createBookmark(b, user, {title: "before the move", url: "https://example.com/before"})
  const last = await events.next(WAIT_MS)
  assert.equal(last.id, before.id)
  await disconnect(first)
  const missed = []
  for(let i = 0; i < 3; i++){
    missed.push(await createBookmark(i === 1 ? b : a, user, {title: `while away ${i}`, url: `https://example.com/away/${i}`}))
  }
  const second = await socketTo(b)
  const {reply} = await joinChannel(second.socket, FIREHOSE, {since: {seq: last.seq, epoch}})
  assert.equal(reply.status, "ok")
  assert.equal(reply.response.recovered, true, `recovered on the other node: ${JSON.stringify(reply.response)}`)
  assert.deepEqual(reply.response.missed.map(m => m.payload.id), missed.map(m => m.id), "every missed event, in order")
  assert.deepEqual(reply.response.missed.map(m => m.payload.seq), [last.seq + 1, last.seq + 2, last.seq + 3])
})

test("recovering on one node while the other posts a burst: every event exactly once, in order", async () => {
  const watcher = listen(await joinOk((await socketTo(a)).socket, FIREHOSE), "bookmark_created")
  const first = await createBookmark(a, user, {title: "mark", url: "https://example.com/mark"})
  const mark = (await watcher.nextMatching(e => e.id === first.id, "the mark")).seq
  const {reply: position} = await joinChannel((await socketTo(a)).socket, FIREHOSE, {since: null})
  const epoch = position.response.epoch
  // Posts on node A, while a listener on node B joins with `since` in the middle of them.
  const burst = Array.from({length: 30}, (_, i) =>
    createBookmark(a, user, {title: `burst ${i}`, url: `https://example.com/burst/${i}`}))
  const late = await socketTo(b)
  const channel = makeChannel(late.socket, FIREHOSE, {since: {seq: mark, epoch}})
  const live = []
  channel.on("bookmark_created", payload => live.push(payload.seq))
  channel.join()
  const joined = await channel.joins.next(WAIT_MS)
  assert.equal(joined.status, "ok", JSON.stringify(joined.response))
  const reply = joined.response
  const posted = await Promise.all(burst)
  const top = mark + posted.length
  const deadline = Date.now() + WAIT_MS
  const seqs = () => [...reply.missed.map(m => m.payload.seq), ...live]
  while(Math.max(0, ...seqs()) < top && Date.now() < deadline){ await new Promise(r => setTimeout(r, 20)) }
  assert.equal(reply.recovered, true, JSON.stringify(reply))
  const expected = Array.from({length: posted.length}, (_, i) => mark + 1 + i)
  assert.deepEqual(seqs(), expected, "the replay then the live stream: each seq once, none missing")
})

test("a chat message sent on node B reaches a room member on node A", async () => {
  const {alice, bob, slug} = await roomWithBob("room")
  const onA = await joinOk((await socketTo(a, {token: alice.token})).socket, `room:${slug}`)
  const messages = listen(onA, "new_message")
  const onB = await joinOk((await socketTo(b, {token: bob.token})).socket, `room:${slug}`)
  const sent = await new Promise((resolve, reject) => {
    onB.push("new_msg", {body: "hello from node B"}).receive("ok", resolve).receive("error", reject).receive("timeout", () => reject(new Error("push timeout")))
  })
  const got = await messages.next(WAIT_MS)
  assert.equal(got.body, "hello from node B")
  assert.equal(got.user.username, bob.username)
  assert.equal(typeof got.seq, "number")
  assert.ok(sent, "the sender's push was acknowledged")
})

test("presence crosses nodes; a killed node's presences leave everywhere within the heartbeat bound", async () => {
  const [alice, bob, carol] = [user, await createUser(b), await createUser(a)]
  const slug = await createRoom(a, alice, "presence")
  const topic = `room:${slug}`
  // A third node, killed at the end of this test.
  const c = await cluster.addNode()
  const aliceOnA = (await socketTo(a, {token: alice.token})).socket
  await joinOk(aliceOnA, topic)
  const carolOnC = (await socketTo(c, {token: carol.token})).socket
  await joinOk(carolOnC, topic)
  // Bob joins on B: his presence_state lists the tabs on A and C too.
  const bobOnB = (await socketTo(b, {token: bob.token})).socket
  const channel = makeChannel(bobOnB, topic)
  const states = listen(channel, "presence_state")
  const diffs = listen(channel, "presence_diff")
  channel.join()
  assert.equal((await channel.joins.next(WAIT_MS)).status, "ok")
  const state = await states.next(WAIT_MS)
  assert.deepEqual(names(state), [alice.username, bob.username, carol.username].sort(),
    `presence from every node: ${JSON.stringify(state)}`)
  // Node C dies without a word: its presences leave on B within the bound (10 s
  // heartbeat expiry + one 3 s sweep; 20 s allowed).
  const killedAt = Date.now()
  process.kill(c.pid, "SIGKILL")
  const leave = await diffs.nextMatching(d => names(d.leaves).includes(carol.username), "carol's leave", 20_000)
  const took = Date.now() - killedAt
  console.log(`# the killed node's presence left node B's listener ${took} ms after the SIGKILL`)
  assert.deepEqual(leave.joins, {}, "a leave, nothing joined")
  assert.ok(took <= 15_000, `removed within the stated bound: ${took} ms`)
  // And a join on B after that no longer shows her.
  const again = (await socketTo(b, {token: alice.token})).socket
  const second = makeChannel(again, topic)
  const secondStates = listen(second, "presence_state")
  second.join()
  assert.equal((await second.joins.next(WAIT_MS)).status, "ok")
  const after = await secondStates.next(WAIT_MS)
  assert.ok(!names(after).includes(carol.username), `the killed node's tab is gone: ${JSON.stringify(after)}`)
  assert.ok(names(after).includes(bob.username))
  cluster.nodes.splice(cluster.nodes.indexOf(c), 1)
  await c.stop()
})

test("typing on node B reaches a room member on node A, but not the typist's own tab there", async () => {
  const {alice, bob, slug} = await roomWithBob("typing")
  const topic = `room:${slug}`
  const aliceOnA = await joinOk((await socketTo(a, {token: alice.token})).socket, topic)
  const aliceHears = {typing: listen(aliceOnA, "user_typing"), stopped: listen(aliceOnA, "user_stopped_typing")}
  const bobsOtherTab = await joinOk((await socketTo(a, {token: bob.token})).socket, topic)
  const bobHears = listen(bobsOtherTab, "user_typing")
  const bobOnB = await joinOk((await socketTo(b, {token: bob.token})).socket, topic)
  await new Promise((resolve, reject) => {
    bobOnB.push("typing", {}).receive("ok", resolve).receive("error", reject).receive("timeout", () => reject(new Error("push timeout")))
  })
  const typing = await aliceHears.typing.next(WAIT_MS)
  assert.deepEqual(typing.user, {id: bob.id, username: bob.username})
  const stopped = await aliceHears.stopped.next(WAIT_MS)
  assert.equal(stopped.user.id, bob.id, "and that he stopped, after the typing timeout")
  await assert.rejects(bobHears.next(200), "the typist's own tab on the other node is skipped")
})

test("what one node does to a room reaches the room's actor on the other: members, messages, deletion", async () => {
  const alice = user
  const bob = await createUser(b)
  const slug = await createRoom(a, alice, "private", {private: true})
  const topic = `room:${slug}`
  // The room runs on node A (Alice is in it); Bob is invited on node B.
  const aliceOnA = await joinOk((await socketTo(a, {token: alice.token})).socket, topic)
  const deleted = listen(aliceOnA, "room_deleted")
  const refused = await joinChannel((await socketTo(a, {token: bob.token})).socket, topic)
  assert.equal(refused.reply.status, "error", "not a member yet")
  refused.channel.leave()
  await expectStatus(await call(b, alice, "POST", `/api/rooms/${slug}/invites`, {username: bob.username}), 201)
  // A message posted on node B is in the join snapshot node A answers.
  const posted = await call(b, bob, "POST", `/api/rooms/${slug}/messages`, {body: "posted on B"})
  const postedId = (await expectStatus(posted, 201)).data.id
  const bobOnA = makeChannel((await socketTo(a, {token: bob.token})).socket, topic)
  bobOnA.join()
  const joined = await bobOnA.joins.next(WAIT_MS)
  assert.equal(joined.status, "ok", `the invitation made on B admits Bob on A: ${JSON.stringify(joined.response)}`)
  assert.ok(joined.response.messages.some(m => m.id === postedId), "node A's snapshot has B's message")
  // Deleted on node B: the channels on node A hear it once and are closed.
  await expectStatus(await call(b, alice, "DELETE", `/api/rooms/${slug}`), 204)
  assert.equal((await deleted.next(WAIT_MS)).slug, slug)
  await aliceOnA.closes.next(WAIT_MS)
  await assert.rejects(deleted.next(300), "room_deleted comes once")
})

test("a bookmark made or deleted on node B is listed or gone on node A at once", async () => {
  const made = await createBookmark(b, user, {title: "made on B", url: "https://example.com/made-on-b"})
  /** Node A's first page of bookmarks, polled until `accept` holds (bounded). */
  async function firstPageOnA(accept, what){
    const deadline = Date.now() + WAIT_MS
    for(;;){
      const page = (await expectStatus(await fetch(`${a.url}/api/bookmarks`), 200)).data
      if(accept(page)){ return page }
      assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(page.slice(0, 3))}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  await firstPageOnA(page => page.some(bm => bm.id === made.id), "node A lists the bookmark made on B")
  await expectStatus(await call(b, user, "DELETE", `/api/bookmarks/${made.id}`), 204)
  await firstPageOnA(page => !page.some(bm => bm.id === made.id), "node A no longer lists it")
  await expectStatus(await fetch(`${a.url}/api/bookmarks/${made.id}`), 404)
})

test("an upload made on node B is served by node A", async () => {
  const form = new FormData()
  form.append("file", new Blob(["uploaded through node B\n"], {type: "text/plain"}), "b.txt")
  const made = await fetch(`${b.url}/api/uploads`, {method: "POST", headers: {authorization: `Bearer ${user.token}`}, body: form})
  const upload = (await expectStatus(made, 201)).data
  const served = await fetch(`${a.url}${upload.url}`)
  assert.equal(served.status, 200)
  assert.equal(await served.text(), "uploaded through node B\n")
})

test("a token revoked on node B closes the sockets it opened on node A", async () => {
  const token = (await expectStatus(await call(b, user, "POST", "/api/tokens", {name: "cluster laptop"}), 201)).data
  const client = await socketTo(a, {token: token.token})
  await joinOk(client.socket, FIREHOSE)
  await expectStatus(await call(b, user, "DELETE", `/api/tokens/${token.id}`), 204)
  const closed = await client.closes.next(WAIT_MS)
  assert.equal(closed.code, 1008, "closed as revoked, by the node that did not revoke it")
  client.socket.disconnect()
  const refused = await fetch(`${a.url}/api/tokens`, {headers: {authorization: `Bearer ${token.token}`}})
  assert.equal(refused.status, 401, "and node A refuses the token")
})

test("page readers: counts, state and diffs cover every node; a killed node's readers leave", async () => {
  const page = `page:/cluster/${uniqueName("page")}`
  const c = await cluster.addNode()
  const carol = await createUser(c)
  // An anonymous reader on A, then a signed-in one on C.
  const onA = makeChannel((await socketTo(a)).socket, page)
  const countsA = listen(onA, "readers")
  onA.join()
  const replyA = await onA.joins.next(WAIT_MS)
  assert.equal(replyA.status, "ok")
  assert.equal(replyA.response.readers, 1)
  const onC = await joinOk((await socketTo(c, {token: carol.token})).socket, page)
  await countsA.nextMatching(counts => counts.readers === 2, "A counting C's reader")
  // A third reader on B: its state lists all three, its counts say 3, and A hears it.
  const onB = makeChannel((await socketTo(b)).socket, page)
  const states = listen(onB, "presence_state")
  const diffs = listen(onB, "presence_diff")
  const countsB = listen(onB, "readers")
  onB.join()
  const replyB = await onB.joins.next(WAIT_MS)
  assert.equal(replyB.status, "ok")
  assert.equal(replyB.response.readers, 3, JSON.stringify(replyB.response))
  assert.ok(replyB.response.total >= 3)
  const keys = Object.keys(await states.next(WAIT_MS))
  assert.equal(keys.length, 3, `one key per reader, anonymous ones apart across nodes: ${keys}`)
  assert.ok(keys.includes(String(carol.id)))
  assert.equal(keys.filter(k => k.startsWith("anon:")).length, 2)
  await countsA.nextMatching(counts => counts.readers === 3, "A counting B's reader")
  // C dies without a word: its reader leaves B's page within the bound, and counts drop.
  const killedAt = Date.now()
  process.kill(c.pid, "SIGKILL")
  await diffs.nextMatching(d => Object.keys(d.leaves).includes(String(carol.id)), "carol's leave", 20_000)
  const took = Date.now() - killedAt
  console.log(`# the killed node's page reader left node B's page ${took} ms after the SIGKILL`)
  assert.ok(took <= 15_000, `removed within the stated bound: ${took} ms`)
  await countsB.nextMatching(counts => counts.readers === 2, "B's count without C's reader")
  await countsA.nextMatching(counts => counts.readers === 2, "A's count without C's reader")
  onC.leave()
  cluster.nodes.splice(cluster.nodes.indexOf(c), 1)
  await c.stop()
})

test("a node the others took for dead has its room presences and page readers back on them", async t => {
  const redis = new URL(REDIS)
  const redisCli = (...args) => run("redis-cli", ["-h", redis.hostname, "-p", redis.port || "6379", ...args])
  try { await redisCli("PING") } catch { t.skip("no redis-cli"); return }
  const [alice, bob] = [user, await createUser(b)]
  const slug = await createRoom(a, alice, "stall")
  const page = `page:/cluster/${uniqueName("heal")}`
  // On A: Alice in the room, and an anonymous page reader.
  const aliceInRoom = makeChannel((await socketTo(a, {token: alice.token})).socket, `room:${slug}`)
  const roomDiffs = listen(aliceInRoom, "presence_diff")
  aliceInRoom.join()
  assert.equal((await aliceInRoom.joins.next(WAIT_MS)).status, "ok")
  const onA = makeChannel((await socketTo(a)).socket, page)
  const statesA = listen(onA, "presence_state")
  const pageDiffs = listen(onA, "presence_diff")
  const counts = listen(onA, "readers")
  onA.join()
  assert.equal((await onA.joins.next(WAIT_MS)).status, "ok")
  const [keyA] = Object.keys(await statesA.next(WAIT_MS))
  // On B: Bob in the room and on the page.
  await joinOk((await socketTo(b, {token: bob.token})).socket, `room:${slug}`)
  await roomDiffs.nextMatching(d => names(d.joins).includes(bob.username), "Bob's join")
  const onB = makeChannel((await socketTo(b)).socket, page)
  const statesB = listen(onB, "presence_state")
  onB.join()
  assert.equal((await onB.joins.next(WAIT_MS)).status, "ok")
  await counts.nextMatching(c => c.readers === 2, "A counting B's reader")
  // B's reader is `anon:<B's node id>.<socket>`: the id names B's heartbeat key.
  const keyB = Object.keys(await statesB.next(WAIT_MS)).find(k => k !== keyA)
  const nodeB = keyB.slice("anon:".length, keyB.lastIndexOf("."))
  // As if B stalled: its heartbeat is missing for 7 s (it beats every 3 s, and each beat
  // is deleted again at once), long enough for A to take it for dead.
  const until = Date.now() + 7_000
  while(Date.now() < until){
    await redisCli("DEL", `${cluster.namespace}:node:${nodeB}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const fromB = group => Object.keys(group).some(k => k.startsWith(`anon:${nodeB}.`))
  await pageDiffs.nextMatching(d => fromB(d.leaves), "B's page reader dropped on A", 15_000)
  await roomDiffs.nextMatching(d => names(d.leaves).includes(bob.username), "Bob's room presence left", 15_000)
  // B beats again, finds itself out of the node set and announces itself: both come back.
  await pageDiffs.nextMatching(d => fromB(d.joins), "B's page reader back on A", 15_000)
  await counts.nextMatching(c => c.readers === 2, "A counting B's reader again", 15_000)
  await roomDiffs.nextMatching(d => names(d.joins).includes(bob.username), "Bob's room presence back", 15_000)
})

test("a room's presences come back on the broker by themselves after it lost them", async t => {
  const redis = new URL(REDIS)
  const redisCli = (...args) => run("redis-cli", ["-h", redis.hostname, "-p", redis.port || "6379", ...args])
  try { await redisCli("PING") } catch { t.skip("no redis-cli"); return }
  const slug = await createRoom(a, user, "refresh")
  await joinOk((await socketTo(a, {token: user.token})).socket, `room:${slug}`)
  // As a broker that restarted empty: the copy of A's presences in this room is gone.
  await redisCli("DEL", `${cluster.namespace}:presence:room:${slug}`)
  const deadline = Date.now() + 15_000
  for(;;){
    const socket = (await socketTo(b)).socket
    const channel = makeChannel(socket, `room:${slug}`)
    const states = listen(channel, "presence_state")
    channel.join()
    assert.equal((await channel.joins.next(WAIT_MS)).status, "ok")
    const state = await states.next(WAIT_MS)
    channel.leave()
    if(names(state).includes(user.username)){ break }
    assert.ok(Date.now() < deadline, "node A wrote its presences again within 15 s (every 10 s while anyone is there)")
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
})

test("what both nodes acknowledged is in PostgreSQL after they stop", async () => {
  const ids = []
  for(const node of [a, b, a, b]){
    ids.push((await createBookmark(node, user, {title: "durable", url: "https://example.com/durable"})).id)
  }
  for(const client of clients.splice(0)){ await disconnect(client).catch(() => {}) }
  const statuses = await Promise.all(cluster.nodes.map(node => node.stop()))
  for(const status of statuses){ assert.equal(status.code, 0, `a node stopped cleanly: ${JSON.stringify(status)}`) }
  const rows = await cluster.query(`SELECT id FROM bookmarks WHERE id IN (${ids.join(",")}) ORDER BY id`)
  assert.deepEqual(rows.map(Number), ids.slice().sort((x, y) => x - y))
})
