// Measures the pages in Chromium against a running server (scripts/bench-page starts
// one and a firehose-sim that feeds it):
//
// 1. Page weight: the bytes of HTML + JS + CSS each page loads (uncompressed, as served,
//    and gzip-compressed for comparison), from a fresh browser context (no cache).
// 2. Time per frame on the firehose page, from the performance API: for every animation
//    frame, the main-thread work that produced it — from the start of the frame's
//    requestAnimationFrame callbacks until its rendering is done (a MessageChannel task
//    queued from the first rAF callback runs right after style, layout and paint) — plus
//    the WebSocket message handling since the previous frame. Measured twice in the same
//    run: idle (the baseline) and while the stream is on.
//
// Usage: node bench-page.mjs --url http://127.0.0.1:PORT --out DIR
//          [--stream-cmd "firehose-sim run …"] [--seconds 20]
// Writes DIR/page-bench.json and DIR/summary.md, and prints the summary.

import {spawn} from "node:child_process"
import {mkdir, writeFile} from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import zlib from "node:zlib"

import {DESKTOP, launch, png, postJson} from "../helpers.mjs"

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if(a.startsWith("--")){ acc.push([a.slice(2), all[i + 1]?.startsWith("--") ? "true" : all[i + 1]]) }
  return acc
}, []))
const base = args.url
const outDir = args.out
const seconds = Number(args.seconds || 20)
if(!base || !outDir){
  console.error("usage: bench-page.mjs --url http://127.0.0.1:PORT --out DIR [--stream-cmd CMD] [--seconds N]")
  process.exit(2)
}
const server = {url: base}

// ---------------------------------------------------------------------------------------
// Fixtures: a user, a bookmark, a room with a message and an image.

async function fixtures(){
  const name = `bench_${process.pid % 100000}`
  const reg = await postJson(server, "/api/accounts/register", {
    email: `${name}@example.com`, password: "correct horse battery staple", display_name: "Bench", username: name,
  })
  if(reg.status !== 201){ throw new Error(`register: ${reg.status} ${reg.text}`) }
  const session = reg.headers.getSetCookie().find(c => c.startsWith("firehose_session=")).split(";")[0].split("=")[1]
  const auth = {authorization: `Bearer ${session}`}
  const bookmark = await postJson(server, "/api/bookmarks", {bookmark: {
    title: "A bookmark to weigh", url: "https://example.com/weigh", description: "for the page-weight table", tags: "bench, weight",
  }}, auth)
  const room = await postJson(server, "/api/rooms", {name: `Bench ${process.pid}`}, auth)
  const form = new FormData()
  form.append("file", new Blob([png(64)], {type: "image/png"}), "bench.png")
  const upload = await (await fetch(`${base}/api/uploads`, {method: "POST", headers: auth, body: form})).json()
  await postJson(server, `/api/rooms/${room.json.data.slug}/messages`, {body: "hello bench", attachment_id: upload.data.id}, auth)
  return {session, bookmark: bookmark.json.data, room: room.json.data}
}

// ---------------------------------------------------------------------------------------
// Page weight

async function pageWeight(browser, session, pages){
  const rows = []
  for(const [name, urlPath, signedIn] of pages){
    const context = await browser.newContext({viewport: DESKTOP})
    if(signedIn){
      await context.addCookies([{name: "firehose_session", value: session, url: base}])
    }
    const page = await context.newPage()
    const bodies = []
    page.on("response", res => {
      const type = res.request().resourceType()
      if(["document", "script", "stylesheet"].includes(type)){ bodies.push(res.body().then(b => ({type, bytes: b}))) }
    })
    await page.goto(`${base}${urlPath}`, {waitUntil: "load"})
    const loaded = await Promise.all(bodies)
    const sum = type => loaded.filter(x => x.type === type).reduce((n, x) => n + x.bytes.length, 0)
    const gz = loaded.reduce((n, x) => n + zlib.gzipSync(x.bytes).length, 0)
    rows.push({page: name, path: urlPath, html: sum("document"), js: sum("script"), css: sum("stylesheet"),
      total: sum("document") + sum("script") + sum("stylesheet"), gzip: gz})
    await context.close()
  }
  return rows
}

// ---------------------------------------------------------------------------------------
// Time per frame

const MEASURE = () => {
  const frames = []
  let wsTime = 0
  let scriptTime = 0
  // Time in the page's own rAF callbacks (its DOM work), apart from style/layout/paint.
  const raf = window.requestAnimationFrame.bind(window)
  window.requestAnimationFrame = cb => raf(ts => {
    const t = performance.now()
    try { cb(ts) } finally { scriptTime += performance.now() - t }
  })
  let lastFrameStart = null
  let counting = false
  const channel = new MessageChannel()
  let pending = null
  channel.port1.onmessage = () => {
    if(pending === null){ return }
    const end = performance.now()
    if(counting){
      frames.push({start: pending.start, render: end - pending.start, script: scriptTime, ws: pending.ws, interval: pending.interval})
    }
    scriptTime = 0
    pending = null
  }
  const tick = now => {
    raf(tick) // first in line for the next frame too
    const start = performance.now()
    pending = {start, ws: wsTime, interval: lastFrameStart === null ? null : now - lastFrameStart}
    wsTime = 0
    lastFrameStart = now
    channel.port2.postMessage(0)
  }
  raf(tick)
  // Time spent in the page's WebSocket message handlers.
  const desc = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage")
  Object.defineProperty(WebSocket.prototype, "onmessage", {
    configurable: true,
    get(){ return desc.get.call(this) },
    set(fn){
      desc.set.call(this, function(event){
        const t = performance.now()
        try { return fn.call(this, event) } finally { wsTime += performance.now() - t }
      })
    },
  })
  let added = 0
  new MutationObserver(records => {
    for(const r of records){ for(const n of r.addedNodes){ if(n.classList?.contains("bookmark")){ added += 1 } } }
  }).observe(document, {subtree: true, childList: true})
  window.__bench = {
    begin(){ frames.length = 0; added = 0; counting = true },
    end(){ counting = false; return {frames: frames.slice(), added} },
  }
}

function percentile(sorted, p){
  if(sorted.length === 0){ return null }
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]
}

function frameStats(sample, secs){
  const busy = sample.frames.map(f => f.render + f.ws).sort((a, b) => a - b)
  const part = key => sample.frames.map(f => f[key]).sort((a, b) => a - b)
  const script = part("script")
  const ws = part("ws")
  const layoutPaint = sample.frames.map(f => f.render - f.script).sort((a, b) => a - b)
  const intervals = sample.frames.map(f => f.interval).filter(x => x !== null).sort((a, b) => a - b)
  const r = x => x === null ? null : Math.round(x * 100) / 100
  return {
    frames: busy.length,
    fps: r(busy.length / secs),
    busy_ms: {p50: r(percentile(busy, 50)), p95: r(percentile(busy, 95)), p99: r(percentile(busy, 99)), max: r(busy.at(-1) ?? null)},
    interval_ms: {p50: r(percentile(intervals, 50)), p95: r(percentile(intervals, 95)), max: r(intervals.at(-1) ?? null)},
    parts_p95_ms: {dom_script: r(percentile(script, 95)), style_layout_paint: r(percentile(layoutPaint, 95)), websocket: r(percentile(ws, 95))},
    frames_over_16ms: busy.filter(x => x > 16).length,
    // Frames in which the page's own rAF work ran (a batch put on the page).
    update_frames: sample.frames.filter(f => f.script > 0).length,
    update_busy_p95_ms: r(percentile(sample.frames.filter(f => f.script > 0).map(f => f.render + f.ws).sort((a, b) => a - b), 95)),
    bookmarks_rendered: sample.added,
    bookmarks_rendered_per_s: r(sample.added / secs),
  }
}

async function measure(page, secs){
  await page.evaluate(() => window.__bench.begin())
  await page.waitForTimeout(secs * 1000)
  return page.evaluate(() => window.__bench.end())
}

function runStream(cmd){
  const child = spawn("bash", ["-c", cmd], {stdio: ["ignore", "pipe", "pipe"]})
  let out = ""
  child.stdout.on("data", d => { out += d })
  child.stderr.on("data", d => { out += d })
  const done = new Promise(resolve => child.on("exit", code => resolve({code, out})))
  return {child, done}
}

// ---------------------------------------------------------------------------------------

const loadAtStart = os.loadavg()
const browser = await launch()
const {session, bookmark, room} = await fixtures()
const pages = [
  ["firehose (/)", "/", false],
  ["tag feed", "/tags/bench", false],
  ["discover", "/discover", false],
  ["bookmark", `/bookmarks/${bookmark.id}`, false],
  ["new bookmark", "/bookmarks/new", true],
  ["sign up", "/signup", false],
  ["log in", "/login", false],
  ["profile", "/profile", true],
  ["rooms", "/rooms", true],
  ["new room", "/rooms/new", true],
  ["room", `/rooms/${room.slug}`, true],
  ["search", "/search?q=hello", true],
]
const weights = await pageWeight(browser, session, pages)

const context = await browser.newContext({viewport: DESKTOP})
await context.addInitScript(MEASURE)
const page = await context.newPage()
const consoleErrors = []
page.on("console", m => { if(m.type() === "error"){ consoleErrors.push(m.text()) } })
await page.goto(`${base}/`)
await page.waitForSelector('#conn[data-state="online"]')
await page.waitForTimeout(1000)
const idleSecs = Math.max(3, Math.round(seconds / 3))
const idle = frameStats(await measure(page, idleSecs), idleSecs)

let stream = null
let streamed = null
let batched = null
async function streamingRun(target){
  await page.goto(`${base}${target}`)
  await page.waitForSelector('#conn[data-state="online"]')
  await page.waitForFunction(() => document.querySelectorAll(".bookmark").length > 5, null, {timeout: 60_000})
  await page.waitForTimeout(1500)
  return frameStats(await measure(page, seconds), seconds)
}
if(args["stream-cmd"]){
  stream = runStream(args["stream-cmd"])
  // The simulator seeds and connects first; measure once bookmarks flow: the page as
  // shipped (a few items every frame), then with the former fast-stream batching (one
  // batch every 200 ms, ?flush=batched), same stream.
  streamed = await streamingRun("/")
  batched = await streamingRun("/?flush=batched")
  const finished = await stream.done
  if(finished.code !== 0){ console.error(`the stream command exited with ${finished.code}:\n${finished.out.slice(-2000)}`) }
}
const listSize = await page.locator("#bookmarks > li").count()
await browser.close()

const result = {
  url: base,
  measured_at: new Date().toISOString(),
  chromium: "/usr/bin/chromium",
  page_weight_bytes: weights,
  firehose_frames: {idle_baseline: idle, streaming: streamed, streaming_batched: batched, stream_cmd: args["stream-cmd"] || null, seconds, list_size_after: listSize},
  console_errors: consoleErrors,
  machine: {cpus: os.cpus().length, loadavg_start: loadAtStart, loadavg_end: os.loadavg()},
}
const kib = n => `${(n / 1024).toFixed(1)} KiB`
const lines = [
  `# Page bench — ${result.measured_at}`, "",
  `Server: ${base}. Chromium: Debian's, headless, ${DESKTOP.width}×${DESKTOP.height}. ` +
    `Machine: ${os.cpus().length} cores, load average ${loadAtStart.map(x => x.toFixed(2)).join(" ")} at the start, ` +
    `${os.loadavg().map(x => x.toFixed(2)).join(" ")} at the end (server, simulator and Chromium share these cores).`, "",
  "## Page weight (HTML + JS + CSS, as served; gzip for comparison)", "",
  "| page | HTML | JS | CSS | total | gzip |", "|---|---:|---:|---:|---:|---:|",
  ...weights.map(w => `| ${w.page} | ${kib(w.html)} | ${kib(w.js)} | ${kib(w.css)} | ${kib(w.total)} | ${kib(w.gzip)} |`),
  "", "## Firehose page: main-thread work per frame (performance API)", "",
  "| run | frames/s | bookmarks rendered/s | busy p50 | busy p95 | busy p99 | busy max | frames > 16 ms | frame interval p95 | p95 of: DOM script / style+layout+paint / WebSocket | frames with a batch | busy p95 of those |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
]
for(const [label, s] of [["idle (baseline)", idle], ["streaming (as shipped)", streamed], ["streaming, ?flush=batched (200 ms batches)", batched]]){
  if(!s){ continue }
  lines.push(`| ${label} | ${s.fps} | ${s.bookmarks_rendered_per_s} | ${s.busy_ms.p50} ms | ${s.busy_ms.p95} ms | ${s.busy_ms.p99} ms | ${s.busy_ms.max} ms | ${s.frames_over_16ms} of ${s.frames} | ${s.interval_ms.p95} ms | ${s.parts_p95_ms.dom_script} / ${s.parts_p95_ms.style_layout_paint} / ${s.parts_p95_ms.websocket} ms | ${s.update_frames} | ${s.update_busy_p95_ms ?? "–"} ms |`)
}
if(streamed){
  const ratio = (a, b) => b ? (a / b).toFixed(2) : "n/a"
  lines.push("", `Streaming ÷ idle, busy p95: ${ratio(streamed.busy_ms.p95, idle.busy_ms.p95)}×; ` +
    `as shipped ÷ batched: ${ratio(streamed.busy_ms.p95, batched.busy_ms.p95)}×. ` +
    `Target: busy p95 < 16 ms while streaming → ${streamed.busy_ms.p95 < 16 ? "met" : "NOT met"}.`)
  lines.push(`List size after the stream: ${listSize} (bounded at 100).`)
  lines.push("", `Stream: \`${args["stream-cmd"]}\``)
}
if(consoleErrors.length){ lines.push("", `Console errors: ${consoleErrors.length}`, ...consoleErrors.slice(0, 10).map(e => `- ${e}`)) }
const summary = lines.join("\n") + "\n"
await mkdir(outDir, {recursive: true})
await writeFile(path.join(outDir, "page-bench.json"), JSON.stringify(result, null, 2))
await writeFile(path.join(outDir, "summary.md"), summary)
console.log(summary)
if(consoleErrors.length){ process.exit(1) }
