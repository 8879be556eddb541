// The firehose, tag feeds, discover and the bookmark page in Chromium: bookmarks posted
// through the API appear in an open tab without a reload; the list stays bounded under
// a burst; "N new" waits while the reader is scrolled away; a second reader raises
// "N reading now"; likes are optimistic, live for others, and never overwrite a
// viewer's own liked state; a refused like rolls back with a message.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {
  ErrorLog, LIVE_MS, PHONE, anonymousContext, createBookmark, launch, online, signedInContext, startServer,
} from "./helpers.mjs"

let server, browser
const errors = new ErrorLog()

before(async () => {
  // Three likes per minute: the fourth click of the likes test is refused.
  server = await startServer({extraArgs: ["--readers-interval-ms", "100", "--rate-likes", "3/1m"]})
  browser = await launch()
})

after(async () => {
  await browser?.close()
  await server?.stop()
})

test("a bookmark posted through the API appears in an open firehose tab and its tag feed", async () => {
  const alice = await signedInContext(browser, server, errors, {name: "alice"})
  const home = await alice.open("/")
  const tagPage = await alice.open("/tags/rust")
  await online(home)
  await online(tagPage)
  const posted = await createBookmark(server, alice, {
    title: "Live <em>title</em>", url: "https://example.com/live", description: "seen live", tags: "Rust, web",
  })
  const item = home.locator(`#b-${posted.id}`)
  await item.waitFor({timeout: LIVE_MS})
  assert.equal(await item.locator(".b-link").textContent(), "Live <em>title</em>")
  assert.equal(await item.locator(".b-link").getAttribute("href"), "https://example.com/live")
  assert.equal(await item.locator(".b-domain").textContent(), "example.com")
  assert.deepEqual(await item.locator(".b-tags a").allTextContents(), ["#rust", "#web"])
  assert.equal(await item.locator(".b-link em").count(), 0, "user text is never HTML")
  await tagPage.locator(`#b-${posted.id}`).waitFor({timeout: LIVE_MS})

  // Another tag's bookmark reaches the firehose but not the rust feed.
  const other = await createBookmark(server, alice, {title: "Elixir only", url: "https://example.com/ex", tags: ["elixir"]})
  await home.locator(`#b-${other.id}`).waitFor({timeout: LIVE_MS})
  await tagPage.waitForTimeout(300)
  assert.equal(await tagPage.locator(`#b-${other.id}`).count(), 0)
  // A private one reaches neither.
  const hidden = await createBookmark(server, alice, {title: "Private", url: "https://example.com/p", public: false, tags: "rust"})
  await home.waitForTimeout(300)
  assert.equal(await home.locator(`#b-${hidden.id}`).count(), 0)
  await alice.context.close()
})

test("under a burst the list stays bounded, and scrolled away new ones wait behind 'N new'", async () => {
  const bob = await signedInContext(browser, server, errors, {name: "bob", viewport: PHONE})
  const home = await bob.open("/")
  await online(home)
  const burst = []
  for(let i = 0; i < 130; i++){
    burst.push(createBookmark(server, bob, {title: `Burst ${i}`, url: `https://example.com/burst/${i}`, tags: ["burst"]}))
  }
  const made = await Promise.all(burst)
  const newest = Math.max(...made.map(b => b.id))
  await home.locator(`#b-${newest}`).waitFor({timeout: LIVE_MS})
  const count = await home.locator("#bookmarks > li").count()
  assert.ok(count <= 100, `the list holds at most 100 items, has ${count}`)
  const ids = await home.locator("#bookmarks > li").evaluateAll(els => els.map(e => Number(e.dataset.id)))
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a), "newest first")
  // A few items a frame, none skipped: the list is exactly the burst's newest 100.
  assert.deepEqual(ids, made.map(b => b.id).sort((a, b) => b - a).slice(0, 100), "every one of the newest 100, no gaps")

  // Scrolled down: new bookmarks are held and counted, the list does not move.
  await home.evaluate(() => window.scrollTo(0, 2000))
  const firstBefore = await home.locator("#bookmarks > li").first().getAttribute("data-id")
  for(let i = 0; i < 3; i++){ await createBookmark(server, bob, {title: `Later ${i}`, url: `https://example.com/later/${i}`}) }
  await home.locator("#new-items").waitFor({state: "visible", timeout: LIVE_MS})
  await home.waitForFunction(() => document.querySelector("#new-items").textContent === "3 new", null, {timeout: LIVE_MS})
  assert.equal(await home.locator("#bookmarks > li").first().getAttribute("data-id"), firstBefore)
  await home.click("#new-items")
  await home.waitForFunction(() => document.querySelector("#bookmarks > li .b-link").textContent === "Later 2", null, {timeout: LIVE_MS})
  assert.equal(await home.locator("#new-items").isVisible(), false)
  await bob.context.close()
})

test("likes: optimistic, live for others, own state kept, refusals rolled back", async () => {
  const alice = await signedInContext(browser, server, errors, {name: "alice"})
  const bob = await signedInContext(browser, server, errors, {name: "bob"})
  const b = await createBookmark(server, alice, {title: "Like me", url: "https://example.com/like-me"})
  // Bob already likes it; Alice does not.
  const liked = await fetch(`${server.url}/api/bookmarks/${b.id}/like`, {method: "POST", headers: {authorization: `Bearer ${bob.token}`}})
  assert.equal(liked.status, 200)

  const pageA = await alice.open(`/bookmarks/${b.id}`)
  const pageB = await bob.open(`/bookmarks/${b.id}`)
  await online(pageA)
  await online(pageB)
  const button = page => page.locator(`form.like[data-id="${b.id}"] .like-btn`)
  const count = page => page.locator(`form.like[data-id="${b.id}"] .like-count`)
  assert.equal(await button(pageB).getAttribute("aria-pressed"), "true")
  assert.equal(await button(pageA).getAttribute("aria-pressed"), "false")
  assert.equal(await count(pageA).textContent(), "1")
  // Both pages have joined likes:<id> before anyone clicks.
  await pageA.waitForTimeout(300)

  // A likes: her button flips at once; B's count follows, B's own state stays.
  await button(pageA).click()
  assert.equal(await button(pageA).getAttribute("aria-pressed"), "true")
  await pageB.waitForFunction(id => document.querySelector(`form.like[data-id="${id}"] .like-count`).textContent === "2", b.id, {timeout: LIVE_MS})
  assert.equal(await button(pageB).getAttribute("aria-pressed"), "true", "B still likes it")
  // A unlikes: B sees 1 and still likes it.
  await button(pageA).click()
  await pageB.waitForFunction(id => document.querySelector(`form.like[data-id="${id}"] .like-count`).textContent === "1", b.id, {timeout: LIVE_MS})
  assert.equal(await button(pageB).getAttribute("aria-pressed"), "true")
  assert.equal(await button(pageA).getAttribute("aria-pressed"), "false")

  // The third like of the minute goes through; the fourth click is over the budget
  // (3 per minute): it flips at once, is refused, and rolls back with a message.
  await button(pageA).click()
  await pageB.waitForFunction(id => document.querySelector(`form.like[data-id="${id}"] .like-count`).textContent === "2", b.id, {timeout: LIVE_MS})
  await button(pageA).click()
  await pageA.waitForFunction(id => document.querySelector(`form.like[data-id="${id}"] .like-msg`).textContent.includes("Slow down"), b.id, {timeout: LIVE_MS})
  assert.equal(await button(pageA).getAttribute("aria-pressed"), "true", "rolled back to liked")
  assert.equal(await count(pageA).textContent(), "2")
  await alice.context.close()
  await bob.context.close()
})

test("a second tab raises 'N reading now' on a bookmark page; discover shows another", async () => {
  const alice = await signedInContext(browser, server, errors, {name: "alice"})
  const b = await createBookmark(server, alice, {title: "Read me", url: "https://example.com/read-me"})
  const reader = await anonymousContext(browser, server, errors)
  const first = await reader.open(`/bookmarks/${b.id}`)
  await online(first)
  const reading = page => page.locator(".reading [data-readers-here]")
  await first.waitForFunction(() => document.querySelector(".reading [data-readers-here]").textContent === "1", null, {timeout: LIVE_MS})
  const second = await reader.open(`/bookmarks/${b.id}`)
  await online(second)
  await first.waitForFunction(() => document.querySelector(".reading [data-readers-here]").textContent === "2", null, {timeout: LIVE_MS})
  assert.equal(await reading(second).textContent(), "2")
  await second.close()
  await first.waitForFunction(() => document.querySelector(".reading [data-readers-here]").textContent === "1", null, {timeout: LIVE_MS})

  const discover = await reader.open("/discover")
  await online(discover)
  const shown = new Set([await discover.locator(".bookmark").getAttribute("data-id")])
  for(let i = 0; i < 8 && shown.size < 2; i++){
    await discover.click("#discover-next")
    await discover.waitForTimeout(150)
    shown.add(await discover.locator(".bookmark").getAttribute("data-id"))
  }
  assert.ok(shown.size >= 2, "next shows other bookmarks without a reload")
  assert.equal(await discover.locator(".bookmark").count(), 1)
  await reader.context.close()
  await alice.context.close()
})

test("no console errors on these pages", () => {
  assert.deepEqual(errors.errors, [])
})
