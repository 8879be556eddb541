// Draws a soak's samples (scripts/soak writes samples.csv) as a PNG: one panel per
// measure — server RSS, open descriptors, database and WAL size, topics / retained
// history / tasks, open sockets — on one time axis, with the reconnect storms marked.
// The chart is plain SVG built here and photographed by Chromium (no plotting library).
//
// Usage: node soak-plot.mjs --csv samples.csv --out soak.png [--storms 600,1200,...]
//   (--storms: storm times in seconds from the first sample)

import {readFile} from "node:fs/promises"

import {launch} from "../helpers.mjs"

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if(a.startsWith("--")){ acc.push([a.slice(2), all[i + 1]]) }
  return acc
}, []))
if(!args.csv || !args.out){
  console.error("usage: soak-plot.mjs --csv samples.csv --out soak.png [--storms S1,S2,...]")
  process.exit(2)
}

const lines = (await readFile(args.csv, "utf8")).trim().split("\n")
const header = lines[0].split(",")
const rows = lines.slice(1).map(l => Object.fromEntries(l.split(",").map((v, i) => [header[i], Number(v)])))
if(rows.length < 2){
  console.error("soak-plot: fewer than two samples, nothing to draw")
  process.exit(1)
}
const t0 = rows[0].unix_s
const storms = (args.storms || "").split(",").filter(Boolean).map(Number)
const MiB = 1024 * 1024

const panels = [
  {title: "server RSS (MiB)", series: [["rss", r => r.rss_bytes / MiB]]},
  {title: "open file descriptors", series: [["fds", r => r.fds]]},
  {title: "SQLite size (MiB)", series: [["database", r => r.db_bytes / MiB], ["WAL", r => r.wal_bytes / MiB]]},
  {title: "held by the server", series: [["topics", r => r.topics], ["history events", r => r.history_events], ["tasks", r => r.tasks]]},
  {title: "history per topic (events)", series: [["largest topic", r => r.history_largest_topic ?? 0]]},
  {title: "open sockets", series: [["sockets", r => r.open_sockets]]},
]
const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df"]
const W = 1100, H = 190, PAD = {l: 70, r: 20, t: 28, b: 26}
const tMax = rows[rows.length - 1].unix_s - t0

function esc(s){ return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c])) }

function panel(p){
  const values = p.series.flatMap(([, f]) => rows.map(f)).filter(Number.isFinite)
  let lo = Math.min(0, ...values), hi = Math.max(...values)
  if(hi <= lo){ hi = lo + 1 }
  const x = t => PAD.l + (t / tMax) * (W - PAD.l - PAD.r)
  const y = v => H - PAD.b - ((v - lo) / (hi - lo)) * (H - PAD.t - PAD.b)
  const parts = [`<text x="${PAD.l}" y="16" class="title">${esc(p.title)}</text>`]
  for(const frac of [0, 0.5, 1]){
    const v = lo + frac * (hi - lo)
    parts.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" class="grid"/>`)
    parts.push(`<text x="${PAD.l - 6}" y="${y(v) + 4}" class="tick" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`)
  }
  for(let m = 0; m <= tMax / 60; m += Math.max(1, Math.round(tMax / 60 / 12))){
    parts.push(`<text x="${x(m * 60)}" y="${H - 8}" class="tick" text-anchor="middle">${m} min</text>`)
  }
  for(const s of storms){
    parts.push(`<line x1="${x(s)}" x2="${x(s)}" y1="${PAD.t}" y2="${H - PAD.b}" class="storm"/>`)
  }
  p.series.forEach(([name, f], i) => {
    const pts = rows.map(r => `${x(r.unix_s - t0).toFixed(1)},${y(f(r)).toFixed(1)}`).join(" ")
    parts.push(`<polyline points="${pts}" fill="none" stroke="${COLORS[i]}" stroke-width="1.5"/>`)
    parts.push(`<text x="${W - PAD.r - 150 * (p.series.length - i)}" y="16" fill="${COLORS[i]}" class="legend">■ ${esc(name)}</text>`)
  })
  return `<svg width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">${parts.join("")}</svg>`
}

const html = `<!doctype html><meta charset="utf-8"><style>
  body{margin:0;padding:12px;background:#fff;font:13px system-ui,sans-serif}
  h1{font-size:16px;margin:0 0 6px} .title{font-weight:600;font-size:13px}
  .tick{font-size:11px;fill:#57606a} .legend{font-size:12px} .grid{stroke:#eaeef2}
  .storm{stroke:#bf8700;stroke-dasharray:4 3}
</style><h1>soak: ${rows.length} samples over ${(tMax / 60).toFixed(1)} min; dashed lines are reconnect storms</h1>
${panels.map(panel).join("\n")}`

const browser = await launch()
try {
  const page = await browser.newPage({viewport: {width: W + 24, height: 200}})
  await page.setContent(html)
  await page.screenshot({path: args.out, fullPage: true})
} finally {
  await browser.close()
}
console.log(`soak-plot: wrote ${args.out}`)
