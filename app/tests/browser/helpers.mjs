// Shared code of the browser tests: Debian's Chromium driven by playwright-core, the real
// server (../js/server.mjs), users signed in through the real registration endpoint,
// console-error collection, screenshots, and small HTTP helpers.

import {mkdir} from "node:fs/promises"
import path from "node:path"
import {fileURLToPath} from "node:url"
import zlib from "node:zlib"

import {chromium} from "playwright-core"

export {startServer} from "../js/server.mjs"

const HERE = path.dirname(fileURLToPath(import.meta.url))

/** Where screenshots go (gitignored); FIREHOSE_BROWSER_OUT overrides. */
export const OUT_DIR = process.env.FIREHOSE_BROWSER_OUT || path.join(HERE, "output")

/** Debian's chromium (apt); no browser is downloaded. */
export const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium"

/** Launch flags that work on this machine and on CI (see the developers' guide). */
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

export const DESKTOP = {width: 1280, height: 800}
export const PHONE = {width: 360, height: 740}

/** How long a test waits for anything live to show up. */
export const LIVE_MS = 5000

export function launch(){
  return chromium.launch({executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true})
}

let counter = 0
/** A name unique within this run (usernames: 3-32 of [a-z0-9_]). */
export function uniqueName(prefix){
  counter += 1
  return `${prefix}_${process.pid % 10000}_${counter}`
}

/**
 * Console errors and uncaught exceptions of every page made through `openPage`, so a test
 * can assert there were none.
 */
export class ErrorLog {
  constructor(){ this.errors = [] }

  watch(page){
    page.on("console", msg => {
      if(msg.type() === "error"){ this.errors.push(`${page.url()} console: ${msg.text()}`) }
    })
    page.on("pageerror", err => this.errors.push(`${page.url()} pageerror: ${err.message}`))
    return page
  }

  /**
   * Drops the browser's own log line for a document answered `status` on purpose (a
   * form sent back with its errors is a 4xx page, and Chromium logs every 4xx document).
   */
  expectDocumentStatus(urlPart, status){
    this.errors = this.errors.filter(e => !(e.includes(urlPart) && e.includes(`status of ${status}`)))
  }
}

/** POST JSON; resolves {status, json, headers}. */
export async function postJson(server, urlPath, body, headers = {}){
  const res = await fetch(`${server.url}${urlPath}`, {
    method: "POST",
    headers: {"content-type": "application/json", accept: "application/json", ...headers},
    body: JSON.stringify(body),
  })
  const text = await res.text()
  let json
  try { json = text ? JSON.parse(text) : undefined } catch { json = undefined }
  return {status: res.status, json, headers: res.headers, text}
}

/**
 * Registers an account through `POST /api/accounts/register` and returns a browser
 * context signed in with its session cookie, plus an API token for scripted calls.
 */
export async function signedInContext(browser, server, errors, {name, viewport = DESKTOP} = {}){
  const username = uniqueName(name || "user")
  const reg = await postJson(server, "/api/accounts/register", {
    email: `${username}@example.com`, password: "correct horse battery staple", display_name: name || username, username,
  })
  if(reg.status !== 201){ throw new Error(`register ${username}: ${reg.status} ${reg.text}`) }
  const cookie = reg.headers.getSetCookie().find(c => c.startsWith("firehose_session="))
  const value = cookie.split(";")[0].split("=")[1]
  const token = await postJson(server, "/api/tokens", {name: "tests"}, {authorization: `Bearer ${value}`})
  if(token.status !== 201){ throw new Error(`token for ${username}: ${token.status} ${token.text}`) }
  const context = await browser.newContext({viewport})
  const {hostname} = new URL(server.url)
  await context.addCookies([{name: "firehose_session", value, domain: hostname, path: "/", httpOnly: true, sameSite: "Lax"}])
  return {
    context,
    username,
    id: reg.json.data.user.id,
    token: token.json.data.token,
    async open(urlPath){
      const page = errors.watch(await context.newPage())
      await page.goto(`${server.url}${urlPath}`)
      return page
    },
  }
}

/** An anonymous context with an `open` like `signedInContext`'s. */
export async function anonymousContext(browser, server, errors, {viewport = DESKTOP} = {}){
  const context = await browser.newContext({viewport})
  return {
    context,
    async open(urlPath){
      const page = errors.watch(await context.newPage())
      await page.goto(`${server.url}${urlPath}`)
      return page
    },
  }
}

/** Waits until the page's socket is connected (the footer says "online"). */
export async function online(page){
  await page.waitForSelector('#conn[data-state="online"]', {timeout: LIVE_MS})
}

export async function createBookmark(server, user, bookmark){
  const res = await postJson(server, "/api/bookmarks", {bookmark}, {authorization: `Bearer ${user.token}`})
  if(res.status !== 201){ throw new Error(`create bookmark: ${res.status} ${res.text}`) }
  return res.json.data
}

export async function createRoom(server, user, room){
  const res = await postJson(server, "/api/rooms", room, {authorization: `Bearer ${user.token}`})
  if(res.status !== 201){ throw new Error(`create room: ${res.status} ${res.text}`) }
  return res.json.data
}

/** Saves a full-page screenshot as <OUT_DIR>/screenshots/<device>/<name>.png. */
export async function screenshot(page, device, name){
  const dir = path.join(OUT_DIR, "screenshots", device)
  await mkdir(dir, {recursive: true})
  await page.screenshot({path: path.join(dir, `${name}.png`), fullPage: true})
}

/** Whether the page is wider than its viewport (a horizontal scrollbar). */
export function overflowsHorizontally(page){
  return page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth)
}

/** A solid-colour PNG of `size` x `size` pixels, made here (no fixture files). */
export function png(size = 48, [r, g, b] = [200, 67, 31]){
  const row = Buffer.alloc(1 + size * 3)
  for(let x = 0; x < size; x++){ row[1 + x * 3] = r; row[2 + x * 3] = g; row[3 + x * 3] = b }
  const raw = Buffer.concat(Array.from({length: size}, () => row))
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const body = Buffer.concat([Buffer.from(type, "ascii"), data])
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(zlib.crc32(body))
    return Buffer.concat([len, body, crc])
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(size, 0)
  header.writeUInt32BE(size, 4)
  header[8] = 8 // bit depth
  header[9] = 2 // truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", zlib.deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ])
}
