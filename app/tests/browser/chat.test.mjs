// Rooms in Chromium, two users in two browser contexts: the room list follows the lobby;
// typing shows "X is typing…" to the other and then clears; a message with an image
// arrives with its preview; presence counts a user with two tabs once; own messages can
// be deleted; a message sent over HTTP shows up live; search highlights and opens the
// room at the message; older messages load on scroll up.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {ErrorLog, LIVE_MS, createRoom, launch, online, png, postJson, signedInContext, startServer} from "./helpers.mjs"

let server, browser, alice, bob
const errors = new ErrorLog()

before(async () => {
  server = await startServer()
  browser = await launch()
  alice = await signedInContext(browser, server, errors, {name: "alice"})
  bob = await signedInContext(browser, server, errors, {name: "bob"})
})

after(async () => {
  await browser?.close()
  await server?.stop()
})

test("the room list follows the lobby: new rooms and member counts appear live", async () => {
  const list = await bob.open("/rooms")
  await online(list)
  // Joined before anything happens.
  await list.waitForTimeout(200)
  const room = await createRoom(server, alice, {name: "Lobby News", description: "<b>not bold</b>"})
  const item = list.locator(`#room-${room.slug}`)
  await item.waitFor({timeout: LIVE_MS})
  assert.equal(await item.locator(".room-link").textContent(), "Lobby News")
  assert.equal(await item.locator(".room-desc").textContent(), "<b>not bold</b>")
  assert.equal(await item.locator(".room-members").textContent(), "1")
  const joined = await postJson(server, `/api/rooms/${room.slug}/join`, {}, {authorization: `Bearer ${bob.token}`})
  assert.equal(joined.status, 201)
  await list.waitForFunction(slug => document.querySelector(`#room-${slug} .room-members`).textContent === "2", room.slug, {timeout: LIVE_MS})
  // A private room never shows up for others.
  const secret = await createRoom(server, alice, {name: "Secret", private: true})
  await list.waitForTimeout(300)
  assert.equal(await list.locator(`#room-${secret.slug}`).count(), 0)
  await list.close()
})

test("typing shows to the other user and clears; a message with an image arrives with its preview", async () => {
  const room = await createRoom(server, alice, {name: "Pictures"})
  const pageA = await alice.open(`/rooms/${room.slug}`)
  const pageB = await bob.open(`/rooms/${room.slug}`)
  await online(pageA)
  await online(pageB)
  // Presence: each sees both.
  await pageB.waitForFunction(() => document.querySelectorAll("#online li").length === 2, null, {timeout: LIVE_MS})

  await pageA.locator("#composer-body").pressSequentially("hel", {delay: 30})
  await pageB.waitForFunction(name => document.querySelector("#typing").textContent === `${name} is typing…`, alice.username, {timeout: LIVE_MS})
  assert.equal(await pageA.locator("#typing").textContent(), "", "nobody sees their own typing")
  // Two seconds after the last keystroke it clears.
  await pageB.waitForFunction(() => document.querySelector("#typing").textContent === "", null, {timeout: LIVE_MS})

  // Attach an image: preview at once, progress bar, then sent with the message.
  await pageA.setInputFiles("#composer-file", {name: "red.png", mimeType: "image/png", buffer: png(64)})
  await pageA.locator("#upload-img").waitFor({state: "visible", timeout: LIVE_MS})
  assert.match(await pageA.locator("#upload-img").getAttribute("src"), /^blob:/)
  await pageA.waitForFunction(() => document.querySelector("#upload-progress").value === 100, null, {timeout: LIVE_MS})
  await pageA.waitForFunction(() => document.querySelector("#composer-status").textContent === "Attachment ready.", null, {timeout: LIVE_MS})
  await pageA.fill("#composer-body", "look <i>at</i> this")
  await pageA.press("#composer-body", "Enter")
  const message = pageB.locator(".msg", {hasText: "look <i>at</i> this"})
  await message.waitFor({timeout: LIVE_MS})
  assert.equal(await message.locator(".msg-body i").count(), 0, "message text is never HTML")
  const img = message.locator(".msg-attachment img")
  await img.waitFor({timeout: LIVE_MS})
  await pageB.waitForFunction(el => el.complete && el.naturalWidth === 64, await img.elementHandle(), {timeout: LIVE_MS})
  assert.match(await img.getAttribute("src"), /^\/uploads\/[0-9a-f]{32}$/)
  assert.equal(await pageA.inputValue("#composer-body"), "", "the box is cleared after sending")

  // Shift+Enter is a new line, not a send.
  await pageA.locator("#composer-body").press("Shift+Enter")
  assert.equal(await pageA.locator(".msg").count(), 1)
  await pageA.close()
  await pageB.close()
})

test("presence counts a user's two tabs once; own messages can be deleted; HTTP messages appear live", async () => {
  const room = await createRoom(server, alice, {name: "Presence"})
  const pageB = await bob.open(`/rooms/${room.slug}`)
  await online(pageB)
  const tab1 = await alice.open(`/rooms/${room.slug}`)
  const tab2 = await alice.open(`/rooms/${room.slug}`)
  await online(tab1)
  await online(tab2)
  await pageB.waitForFunction(() => document.querySelector("#online-count").textContent === "(2)", null, {timeout: LIVE_MS})
  await pageB.waitForTimeout(300)
  assert.equal(await pageB.locator("#online li").count(), 2, "alice's two tabs count once")
  await tab2.close()
  await pageB.waitForTimeout(300)
  assert.equal(await pageB.locator("#online li").count(), 2, "alice is still here in her other tab")

  // A message sent over HTTP (a bot, curl) shows up like any other.
  const sent = await postJson(server, `/api/rooms/${room.slug}/messages`, {body: "from a script"}, {authorization: `Bearer ${bob.token}`})
  assert.equal(sent.status, 201, sent.text)
  await tab1.locator(`#m-${sent.json.data.id}`).waitFor({timeout: LIVE_MS})
  assert.equal(await tab1.locator(`#m-${sent.json.data.id} .msg-body`).textContent(), "from a script")
  // Bob may delete his own message; Alice, the room's admin, may delete any.
  await pageB.locator(`#m-${sent.json.data.id}`).waitFor({timeout: LIVE_MS})
  assert.equal(await pageB.locator(`#m-${sent.json.data.id} form.msg-delete`).isVisible(), true)
  assert.equal(await tab1.locator(`#m-${sent.json.data.id} form.msg-delete`).isVisible(), true)
  await tab1.fill("#composer-body", "delete me")
  await tab1.press("#composer-body", "Enter")
  const mine = tab1.locator(".msg.mine", {hasText: "delete me"})
  await mine.waitFor({timeout: LIVE_MS})
  const id = await mine.getAttribute("data-id")
  await pageB.locator(`#m-${id}`).waitFor({timeout: LIVE_MS})
  assert.equal(await pageB.locator(`#m-${id} form.msg-delete`).isHidden(), true, "not Bob's to delete")
  await mine.locator("form.msg-delete button").click()
  await mine.locator("form.msg-delete button", {hasText: "Click again"}).waitFor({timeout: LIVE_MS})
  await mine.locator("form.msg-delete button").click()
  await pageB.locator(`#m-${id}`).waitFor({state: "detached", timeout: LIVE_MS})
  await tab1.locator(`#m-${id}`).waitFor({state: "detached", timeout: LIVE_MS})
  await tab1.close()
  await pageB.waitForFunction(() => document.querySelector("#online-count").textContent === "(1)", null, {timeout: LIVE_MS})
  await pageB.close()
})

test("search highlights as you type and opens the room at the message; older messages load on scroll up", async () => {
  const room = await createRoom(server, alice, {name: "Archive"})
  const post = body => postJson(server, `/api/rooms/${room.slug}/messages`, {body}, {authorization: `Bearer ${alice.token}`})
  const first = await post("the quokka is the happiest <animal>")
  for(let i = 0; i < 60; i++){ await post(`filler message ${i}`) }

  const page = await bob.open(`/rooms/${room.slug}`)
  await online(page)
  assert.equal(await page.locator(".msg").count(), 50, "the latest 50")
  await page.locator("#messages-scroll").evaluate(el => { el.scrollTop = 0 })
  await page.waitForFunction(() => document.querySelectorAll(".msg").length === 61, null, {timeout: LIVE_MS})
  await page.waitForFunction(() => document.querySelector("#history").textContent.includes("start of the room"), null, {timeout: LIVE_MS})

  const search = await bob.open("/search")
  await online(search)
  await search.locator("#search-q").pressSequentially("quokka happiest", {delay: 20})
  const hit = search.locator(".result")
  await hit.first().waitFor({timeout: LIVE_MS})
  assert.equal(await hit.count(), 1)
  assert.deepEqual(await hit.locator("mark").allTextContents(), ["quokka", "happiest"])
  assert.equal(await hit.locator(".result-text").textContent(), "the quokka is the happiest <animal>")
  assert.equal(await hit.locator("animal").count(), 0, "message text is never HTML")
  assert.match(search.url(), /\/search\?q=quokka\+happiest/)
  // Scoped to another room: nothing.
  const other = await createRoom(server, alice, {name: "Elsewhere"})
  await search.reload()
  await search.selectOption("#search-room", other.slug)
  await search.waitForFunction(() => !document.querySelector("#no-results").hidden, null, {timeout: LIVE_MS})
  await search.selectOption("#search-room", room.slug)
  await hit.first().waitFor({timeout: LIVE_MS})
  await hit.first().locator("a").click()
  await search.waitForURL(new RegExp(`/rooms/${room.slug}\\?at=${first.json.data.id}`))
  const target = search.locator(`#m-${first.json.data.id}`)
  await target.waitFor({timeout: LIVE_MS})
  assert.match(await target.getAttribute("class"), /target/)
  assert.ok(await target.isVisible())
  await page.close()
  await search.close()
})

test("no console errors on these pages", () => {
  assert.deepEqual(errors.errors, [])
})
