// Every page in Chromium at desktop and phone width: the forms (sign up, log in, log out,
// profile and avatar, new bookmark with live validation, new room), the security rules
// (a Content-Security-Policy that forbids inline scripts, no inline script anywhere,
// CSRF tokens on forms, user text never HTML), no horizontal scroll on a phone, no
// console errors, and a screenshot of each page for reviewers.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"

import {
  DESKTOP, ErrorLog, LIVE_MS, OUT_DIR, PHONE, anonymousContext, createBookmark, createRoom, launch, online,
  overflowsHorizontally, png, postJson, screenshot, signedInContext, startServer,
} from "./helpers.mjs"

let server, browser, alice, bookmark, room
const errors = new ErrorLog()
const EVIL = `<img src=x id=pwned onerror=__pwned=1><script>__pwned=2</script>`

before(async () => {
  server = await startServer()
  browser = await launch()
  alice = await signedInContext(browser, server, errors, {name: "alice"})
  // User-written text everywhere a page shows some.
  const patched = await fetch(`${server.url}/api/accounts/me`, {
    method: "PATCH",
    headers: {"content-type": "application/json", authorization: `Bearer ${alice.token}`},
    body: JSON.stringify({display_name: `Alice ${EVIL}`}),
  })
  assert.equal(patched.status, 200)
  bookmark = await createBookmark(server, alice, {
    title: `Title ${EVIL}`, url: "https://example.com/evil", description: `Description ${EVIL}`, tags: ["html", "c++ & co"],
  })
  room = await createRoom(server, alice, {name: `Room ${EVIL}`, slug: "evil-room", description: `About ${EVIL}`})
  const sent = await postJson(server, `/api/rooms/${room.slug}/messages`, {body: `Message ${EVIL}`}, {authorization: `Bearer ${alice.token}`})
  assert.equal(sent.status, 201)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  console.log(`screenshots: ${OUT_DIR}/screenshots/{desktop,phone}/`)
})

/** Pages as a signed-in user sees them, and the script behaviour each has. */
const PAGES = () => [
  ["firehose", "/"],
  ["tag", "/tags/html"],
  ["discover", "/discover"],
  ["bookmark", `/bookmarks/${bookmark.id}`],
  ["new-bookmark", "/bookmarks/new"],
  ["profile", "/profile"],
  ["rooms", "/rooms"],
  ["new-room", "/rooms/new"],
  ["room", `/rooms/${room.slug}`],
  ["search", "/search?q=message"],
]

async function checkPage(page, name, device){
  await online(page)
  // Live parts have settled (relative times, joined channels).
  await page.waitForTimeout(150)
  assert.equal(await overflowsHorizontally(page), false, `${name} scrolls sideways at ${device} width`)
  const inline = await page.evaluate(() => ({
    scripts: [...document.scripts].filter(s => !s.src).length,
    handlers: [...document.querySelectorAll("*")].flatMap(el => [...el.attributes].map(a => a.name)).filter(n => n.startsWith("on")),
    javascriptUrls: [...document.querySelectorAll("[href^='javascript:' i], [src^='javascript:' i], [action^='javascript:' i]")]
      .filter(el => el.id !== "bookmarklet-link").length,
    pwned: Boolean(document.getElementById("pwned")) || window.__pwned !== undefined,
  }))
  assert.deepEqual(inline, {scripts: 0, handlers: [], javascriptUrls: 0, pwned: false}, `${name} at ${device}`)
  // Every form that posts carries a CSRF token.
  const unprotected = await page.evaluate(() => [...document.forms]
    .filter(f => f.method.toLowerCase() === "post" && !(f.elements._csrf && f.elements._csrf.value))
    .map(f => f.action))
  assert.deepEqual(unprotected, [], `${name}: forms without _csrf`)
  // Every control has a label (or an aria-label).
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input:not([type=hidden]), textarea, select")]
    .filter(el => !(el.labels?.length || el.getAttribute("aria-label"))).map(el => el.id || el.name))
  assert.deepEqual(unlabelled, [], `${name}: controls without a label`)
  await screenshot(page, device, name)
}

test("every page: no inline script, CSRF on forms, labels, no sideways scroll on a phone, screenshots", async () => {
  for(const [device, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]){
    const signedIn = await browser.newContext({viewport})
    await signedIn.addCookies(await alice.context.cookies())
    for(const [name, path] of PAGES()){
      const page = errors.watch(await signedIn.newPage())
      const res = await page.goto(`${server.url}${path}`)
      assert.equal(res.status(), 200, `${name}: ${path}`)
      await checkPage(page, name, device)
      await page.close()
    }
    await signedIn.close()
    const anon = await anonymousContext(browser, server, errors, {viewport})
    for(const [name, path] of [["signup", "/signup"], ["login", "/login"], ["firehose-anonymous", "/"]]){
      const page = await anon.open(path)
      await checkPage(page, name, device)
      await page.close()
    }
    await anon.context.close()
  }
})

test("user-written text is shown as text on every page", async () => {
  const page = await alice.open(`/bookmarks/${bookmark.id}`)
  await online(page)
  assert.equal(await page.locator(".b-link").textContent(), `Title ${EVIL}`)
  assert.equal(await page.locator(".b-desc").textContent(), `Description ${EVIL}`)
  assert.deepEqual(await page.locator(".b-tags a").allTextContents(), ["#html", "#c++ & co"])
  assert.equal(await page.locator(".b-tags a").nth(1).getAttribute("href"), "/tags/c%2B%2B%20%26%20co")
  assert.equal(await page.locator(".me span").textContent(), `Alice ${EVIL}`)
  const roomPage = await alice.open(`/rooms/${room.slug}`)
  await online(roomPage)
  assert.equal(await roomPage.locator(".msg-body").first().textContent(), `Message ${EVIL}`)
  assert.equal(await roomPage.locator(".room-desc").textContent(), `About ${EVIL}`)
  // The tag page of a tag with unusual characters works too.
  const tag = await alice.open("/tags/c%2B%2B%20%26%20co")
  await tag.locator(`#b-${bookmark.id}`).waitFor({timeout: LIVE_MS})
  for(const p of [page, roomPage, tag]){
    assert.equal(await p.evaluate(() => Boolean(document.getElementById("pwned")) || window.__pwned !== undefined), false)
    await p.close()
  }
})

test("the Content-Security-Policy forbids inline scripts, and Chromium enforces it", async () => {
  const res = await fetch(`${server.url}/`)
  const csp = res.headers.get("content-security-policy")
  assert.ok(csp, "pages send a CSP")
  const directives = Object.fromEntries(csp.split(";").map(d => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]))
  assert.deepEqual(directives["script-src"], ["'self'"])
  assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), csp)
  assert.deepEqual(directives["frame-ancestors"], ["'none'"])
  assert.equal(res.headers.get("x-content-type-options"), "nosniff")

  const anon = await anonymousContext(browser, server, new ErrorLog())
  const page = await anon.open("/")
  const outcome = await page.evaluate(() => new Promise(resolve => {
    document.addEventListener("securitypolicyviolation", e => resolve({blocked: e.violatedDirective, ran: window.__inline === 1}))
    const s = document.createElement("script")
    s.textContent = "window.__inline = 1"
    document.body.append(s)
    setTimeout(() => resolve({blocked: null, ran: window.__inline === 1}), 1000)
  }))
  assert.equal(outcome.ran, false)
  assert.match(outcome.blocked, /^script-src/)
  await anon.context.close()
})

test("sign up, log out and log in through the forms; the session cookie's flags", async () => {
  const anon = await anonymousContext(browser, server, errors)
  const page = await anon.open("/signup")
  // The server's answer to a taken email (409) comes back in the form, the fields kept.
  await page.fill("#acc-email", `${alice.username}@example.com`)
  await page.fill("#acc-password", "a long enough password")
  await page.fill("#acc-display", "Carol")
  await page.click("form.stacked button[type=submit]")
  assert.match(await page.locator("#acc-email-error").textContent(), /already been taken/)
  assert.equal(await page.inputValue("#acc-display"), "Carol")
  assert.equal(await page.inputValue("#acc-password"), "", "a password is never sent back")
  await page.fill("#acc-email", "carol@example.com")
  await page.fill("#acc-password", "a long enough password")
  await page.click("form.stacked button[type=submit]")
  await page.waitForURL(`${server.url}/`)
  assert.equal(await page.locator(".me span").textContent(), "Carol")
  const cookie = (await anon.context.cookies()).find(c => c.name === "firehose_session")
  assert.equal(cookie.httpOnly, true)
  assert.equal(cookie.sameSite, "Lax")
  assert.equal(await page.evaluate(() => document.cookie.includes("firehose_session")), false, "scripts cannot read it")

  await page.click("text=Log out")
  await page.waitForURL(`${server.url}/`)
  assert.equal(await page.locator("a[href='/signup']").count(), 1)
  await page.goto(`${server.url}/login?next=/rooms`)
  await page.fill("#acc-email", "carol@example.com")
  await page.fill("#acc-password", "a wrong password!")
  await page.click("form.stacked button[type=submit]")
  assert.match(await page.locator(".notice.error").textContent(), /Invalid email or password/)
  await page.fill("#acc-password", "a long enough password")
  await page.click("form.stacked button[type=submit]")
  await page.waitForURL(`${server.url}/rooms`)
  errors.expectDocumentStatus("/signup", 409)
  errors.expectDocumentStatus("/login", 401)
  await anon.context.close()
})

test("forms without the CSRF token, or from another site, are refused", async () => {
  const cookies = (await alice.context.cookies()).map(c => `${c.name}=${c.value}`).join("; ")
  const form = body => fetch(`${server.url}/bookmarks`, {
    method: "POST", redirect: "manual",
    headers: {"content-type": "application/x-www-form-urlencoded", cookie: cookies},
    body: new URLSearchParams(body),
  })
  const fields = {title: "Forged", url: "https://example.com/forged"}
  assert.equal((await form(fields)).status, 403)
  assert.equal((await form({...fields, _csrf: "not-the-token"})).status, 403)
  const page = await alice.open("/bookmarks/new")
  const token = await page.inputValue("input[name=_csrf]")
  assert.equal((await form({...fields, _csrf: token})).status, 303)
  await page.close()
})

test("new bookmark: the server validates as you type; the bookmarklet opens the form prefilled", async () => {
  const page = await alice.open("/bookmarks/new")
  await online(page)
  await page.locator("#bm-url").pressSequentially("ftp://x", {delay: 10})
  await page.waitForFunction(() => document.querySelector("#bm-url-error").textContent.includes("http"), null, {timeout: LIVE_MS})
  assert.equal(await page.locator("#bm-url").getAttribute("aria-invalid"), "true")
  await page.fill("#bm-url", "https://example.com/typed")
  await page.locator("#bm-url").press("End")
  await page.waitForFunction(() => document.querySelector("#bm-url-error").textContent === "", null, {timeout: LIVE_MS})
  await page.locator("#bm-tags").pressSequentially(Array.from({length: 11}, (_, i) => `t${i}`).join(","), {delay: 2})
  await page.waitForFunction(() => document.querySelector("#bm-tags-error").textContent.includes("10"), null, {timeout: LIVE_MS})
  await page.fill("#bm-tags", "typed, test")
  await page.locator("#bm-title").pressSequentially("Typed in the form", {delay: 5})
  await page.click("#bookmark-form button[type=submit]")
  await page.waitForURL(/\/bookmarks\/\d+$/)
  assert.equal(await page.locator(".b-link").textContent(), "Typed in the form")

  // The bookmarklet: its code is on the page; the script makes it a draggable link.
  const form = await alice.open("/bookmarks/new")
  const href = await form.locator("#bookmarklet-link").getAttribute("href")
  assert.ok(href.startsWith("javascript:") && href.includes(`${server.url}/bookmarks/new?popup=1`), href)
  // What it opens: the form, prefilled; saving shows "Saved" in the popup.
  const popup = await alice.open("/bookmarks/new?popup=1&url=https%3A%2F%2Fexample.com%2Fshared&title=Shared%20page&description=picked")
  assert.equal(await popup.inputValue("#bm-url"), "https://example.com/shared")
  assert.equal(await popup.inputValue("#bm-title"), "Shared page")
  assert.equal(await popup.inputValue("#bm-description"), "picked")
  await popup.click("#bookmark-form button[type=submit]")
  await popup.locator("#close-window").waitFor({timeout: LIVE_MS})
  await screenshot(popup, "desktop", "bookmarklet-saved")
  for(const p of [page, form, popup]){ await p.close() }

  // Signed out, the bookmarklet's form asks to log in and comes back prefilled.
  const anon = await anonymousContext(browser, server, errors)
  const login = await anon.open("/bookmarks/new?url=https%3A%2F%2Fexample.com%2Fx&title=X")
  assert.match(login.url(), /\/login\?next=%2Fbookmarks%2Fnew%3Furl%3D/)
  await anon.context.close()
})

test("profile: display name, avatar previewed at once and uploaded with progress", async () => {
  const bob = await signedInContext(browser, server, errors, {name: "bob"})
  const page = await bob.open("/profile")
  await online(page)
  await page.fill("#pf-display", "Bob the Builder")
  await page.click("form[action='/profile'] button")
  await page.waitForURL(/saved=name/)
  assert.equal(await page.locator(".me span").textContent(), "Bob the Builder")
  await page.setInputFiles("#avatar-file", {name: "me.png", mimeType: "image/png", buffer: png(96, [40, 90, 200])})
  assert.match(await page.locator("#avatar-preview").getAttribute("src"), /^blob:/, "previewed before upload")
  await page.click("#avatar-form button[type=submit]")
  await page.waitForFunction(() => document.querySelector("#avatar-preview").getAttribute("src").startsWith("/uploads/"), null, {timeout: LIVE_MS})
  assert.equal(await page.locator("#avatar-progress").evaluate(p => p.value), 100)
  await page.reload()
  assert.match(await page.locator(".me .avatar-img").getAttribute("src"), /^\/uploads\//)
  // Not an image: refused with a message, nothing changes.
  await page.setInputFiles("#avatar-file", {name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello")})
  assert.match(await page.locator("#avatar-error").textContent(), /image/)
  await screenshot(page, "desktop", "profile-with-avatar")
  await bob.context.close()
})

test("a missing page is an HTML 404 with the same frame", async () => {
  const anon = await anonymousContext(browser, server, new ErrorLog())
  const page = errors.watch(await anon.context.newPage())
  const res = await page.goto(`${server.url}/no/such/page`)
  assert.equal(res.status(), 404)
  assert.match(res.headers()["content-type"], /text\/html/)
  assert.match(await page.locator("h1").textContent(), /404/)
  await screenshot(page, "desktop", "not-found")
  errors.expectDocumentStatus("/no/such/page", 404)
  await anon.context.close()
})

test("no console errors on any page", () => {
  assert.deepEqual(errors.errors, [])
})
