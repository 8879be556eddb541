// Opens N WebSockets to a firehose server, joins each to bookmarks:firehose, and prints
// the server's resident memory per socket (from /metrics before and after) as JSON.
// Usage: node socket-memory.mjs http://127.0.0.1:PORT N
import WebSocket from "ws"

const [base, countArg] = process.argv.slice(2)
const count = Number(countArg || 5000)
const wsUrl = base.replace(/^http/, "ws") + "/socket/websocket?vsn=2.0.0"

async function rss(){
  const text = await (await fetch(`${base}/metrics`)).text()
  const match = text.match(/^process_resident_memory_bytes (\d+)$/m)
  if(!match){ throw new Error("no process_resident_memory_bytes in /metrics") }
  return Number(match[1])
}

function joinOne(i){
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl)
    const timer = setTimeout(() => reject(new Error(`socket ${i}: no join reply within 10 s`)), 10_000)
    ws.on("open", () => ws.send(JSON.stringify([String(i), String(i), "bookmarks:firehose", "phx_join", {}])))
    ws.on("message", () => { clearTimeout(timer); resolve(ws) })
    ws.on("error", reject)
  })
}

const before = await rss()
const sockets = []
for(let i = 0; i < count; i++){ sockets.push(await joinOne(i)) }
await new Promise(r => setTimeout(r, 1000))
const after = await rss()
console.log(JSON.stringify({sockets: count, rss_before: before, rss_after: after, bytes_per_socket: Math.round((after - before) / count)}))
for(const ws of sockets){ ws.terminate() }
