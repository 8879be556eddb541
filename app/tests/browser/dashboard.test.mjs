// The simulator's live dashboard (`firehose-sim run --dashboard`) in Chromium: a real
// run against the embedded app; the page shows the run's figures while it runs (pushed,
// no reload), then the verdict; the page's own policy holds (no console errors, no CSP
// violation); screenshots at desktop and phone width.

import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import {spawn} from "node:child_process"
import {mkdtemp, rm} from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import readline from "node:readline"

import {DESKTOP, ErrorLog, PHONE, launch, overflowsHorizontally, screenshot} from "./helpers.mjs"

const SIM = process.env.FIREHOSE_SIM_BIN

let browser, out
before(async () => {
  assert.ok(SIM, "FIREHOSE_SIM_BIN names the firehose-sim binary (scripts/test-browser sets it)")
  browser = await launch()
  out = await mkdtemp(path.join(os.tmpdir(), "dashboard-"))
})
after(async () => {
  await browser?.close()
  if(out){ await rm(out, {recursive: true, force: true}) }
})

/** Starts a run with a dashboard on a free port; resolves {url, exited} once it serves. */
function startRun(){
  const child = spawn(SIM, [
    "run", "--duration", "6s", "--warmup", "1s", "--listeners", "20", "--tag-listeners", "5", "--rate", "10",
    "--max-lag", "500ms", "--quiet", "--dashboard", "127.0.0.1:0", "--out", out,
  ], {stdio: ["ignore", "ignore", "pipe"]})
  const exited = new Promise(resolve => child.on("exit", code => resolve(code)))
  const url = new Promise((resolve, reject) => {
    const lines = readline.createInterface({input: child.stderr})
    lines.on("line", line => {
      const at = line.indexOf("live dashboard at ")
      if(at >= 0){ resolve(line.slice(at + "live dashboard at ".length).trim()) }
    })
    child.on("exit", code => reject(new Error(`firehose-sim exited ${code} before serving the dashboard`)))
  })
  return {url, exited, child}
}

test("the dashboard shows a run's figures while it runs and its verdict when it ends", async () => {
  const run = startRun()
  const url = await run.url
  const errors = new ErrorLog()
  const context = await browser.newContext({viewport: DESKTOP})
  const page = errors.watch(await context.newPage())
  const violations = []
  page.on("console", msg => { if(/Content Security Policy/i.test(msg.text())){ violations.push(msg.text()) } })
  await page.goto(url)
  assert.equal(await page.title(), "firehose-sim live")

  // Live figures arrive without a reload: a second of traffic with deliveries, the group
  // table and the plots.
  const tile = label => page.locator(".tile", {hasText: label}).locator("b")
  await page.waitForFunction(() => {
    const tiles = [...document.querySelectorAll(".tile")]
    const t = tiles.find(el => el.textContent.includes("deliveries/s"))
    return t && parseFloat(t.querySelector("b").textContent) > 0
  }, null, {timeout: 30000})
  assert.equal(await page.locator("#status").textContent(), "live")
  assert.equal(await tile("open connections").textContent(), "25")
  assert.ok(await page.locator("td", {hasText: /^firehose$/}).count() >= 1, "the firehose group's row")
  assert.ok(await page.locator("#live svg").count() >= 2, "the over-time plots")
  const navigations = await page.evaluate(() => performance.getEntriesByType("navigation").length)
  await screenshot(page, "desktop", "dashboard-live")

  // The end: the verdict, the report's path, and the page stops changing.
  await page.waitForFunction(() => document.getElementById("status").textContent === "run ended", null,
    {timeout: 60000})
  const verdict = await page.locator("#live p.ok").first().textContent()
  assert.match(verdict, /^PASS/)
  assert.match(await page.locator("#live").textContent(), /report\.html/)
  assert.equal(await page.evaluate(() => performance.getEntriesByType("navigation").length), navigations,
    "no reload")
  await screenshot(page, "desktop", "dashboard-ended")
  assert.equal(await run.exited, 0)

  // Phone width: readable, no sideways scroll.
  await page.setViewportSize(PHONE)
  assert.equal(await overflowsHorizontally(page), false)
  await screenshot(page, "phone", "dashboard-ended")
  assert.deepEqual(violations, [])
  assert.deepEqual(errors.errors, [])
  await context.close()
})
