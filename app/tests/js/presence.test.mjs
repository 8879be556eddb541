// phoenix.js's own Presence class (syncState/syncDiff) in a chat room: two signed-in
// clients join `room:<slug>`; each one's presence.list() shows both; when one leaves,
// the other's list() shows one.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import {Presence} from "phoenix"

import {startServer} from "./server.mjs"
import {Inbox, WAIT_MS, connectSocket, createUser, disconnect, uniqueName} from "./helpers.mjs"

let server, alice, bob, slug
const clients = []

before(async () => {
  server = await startServer()
  alice = await createUser(server)
  bob = await createUser(server)
  slug = uniqueName("room").replaceAll("_", "-")
  const res = await fetch(`${server.url}/api/rooms`, {
    method: "POST",
    headers: {"content-type": "application/json", authorization: `Bearer ${alice.token}`},
    body: JSON.stringify({room: {name: "Presence", slug}}),
  })
  assert.equal(res.status, 201, await res.text())
})

after(async () => {
  for(const client of clients){ await disconnect(client) }
  if(server){ await server.stop() }
})

/** A signed-in client in the room, with a Presence whose every sync lands in `syncs`. */
async function joinRoom(user){
  const client = await connectSocket(server, {params: {token: user.token}})
  clients.push(client)
  const channel = client.socket.channel(`room:${slug}`, {})
  const presence = new Presence(channel)
  const syncs = new Inbox(`presence sync for ${user.username}`)
  presence.onSync(() => syncs.push(presence.list((id, {metas}) => ({id, username: metas[0].username, metas}))))
  await new Promise((resolve, reject) => {
    channel.join().receive("ok", resolve)
      .receive("error", e => reject(new Error(`join: ${JSON.stringify(e)}`)))
      .receive("timeout", () => reject(new Error("join timed out")))
  })
  return {client, channel, presence, syncs}
}

/** Waits for a sync whose list satisfies `predicate`; returns that list. */
async function syncUntil(syncs, predicate, what){
  return syncs.nextMatching(predicate, what, WAIT_MS)
}

test("two clients see each other, then one leaves", async () => {
  const a = await joinRoom(alice)
  await syncUntil(a.syncs, list => list.length === 1 && list[0].id === String(alice.id), "alice alone")
  const b = await joinRoom(bob)
  const names = list => list.map(p => p.username).sort()
  const both = [alice.username, bob.username].sort()
  const seenByA = await syncUntil(a.syncs, list => list.length === 2, "alice sees two")
  assert.deepEqual(names(seenByA), both)
  const seenByB = await syncUntil(b.syncs, list => list.length === 2, "bob sees two")
  assert.deepEqual(names(seenByB), both)
  for(const p of seenByB){
    for(const meta of p.metas){
      assert.equal(meta.phx_ref.length, 16, "16-char phx_ref")
      assert.equal(meta.typing, false)
    }
  }

  await new Promise(resolve => b.channel.leave().receive("ok", resolve))
  const after = await syncUntil(a.syncs, list => list.length === 1, "alice alone again")
  assert.deepEqual(names(after), [alice.username])
  assert.equal(a.presence.list().length, 1)
})
