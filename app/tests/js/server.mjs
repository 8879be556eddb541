// Boots the real firehose server binary for the JS compatibility tests.
//
//   const server = await startServer()            // fresh temp data dir, ephemeral port
//   server.url    -> "http://127.0.0.1:PORT"
//   server.wsUrl  -> "ws://127.0.0.1:PORT/socket"  (phoenix.js endpoint; it appends /websocket)
//   await server.stop()                           // SIGTERM, waits for exit, removes its temp dir
//
// The binary comes from $FIREHOSE_BIN, else <repo>/target/debug/firehose (honouring
// $CARGO_TARGET_DIR). Set FIREHOSE_TEST_LOG=1 to echo the server's stderr.

import {spawn} from "node:child_process"
import {mkdtemp, rm} from "node:fs/promises"
import {existsSync} from "node:fs"
import {tmpdir} from "node:os"
import path from "node:path"
import {createInterface} from "node:readline"
import {fileURLToPath} from "node:url"

const HERE = path.dirname(fileURLToPath(import.meta.url))
const REPO = path.resolve(HERE, "..", "..", "..")
const LISTENING = /^firehose listening on (http:\/\/127\.0\.0\.1:(\d+))$/
const START_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 15_000
const STDERR_TAIL_LINES = 60
// Tests post in bursts no person would, and create many accounts from one address: the
// per-user rate limits and the sign-up budget are off unless a test sets one through
// `extraArgs` (which then replaces that one).
const LIMITS_OFF = ["--rate-bookmarks", "--rate-likes", "--rate-messages", "--rate-typing", "--rate-signups"]

function limitsOff(extraArgs){
  return LIMITS_OFF.filter(flag => !extraArgs.includes(flag)).flatMap(flag => [flag, "off"])
}

const running = new Set()
// A crashed test must not leave servers behind.
process.on("exit", () => { for(const child of running){ child.kill("SIGKILL") } })

export function serverBinary(){
  if(process.env.FIREHOSE_BIN){ return path.resolve(process.env.FIREHOSE_BIN) }
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO, process.env.CARGO_TARGET_DIR)
    : path.join(REPO, "target")
  return path.join(targetDir, "debug", "firehose")
}

/** A fresh, empty data directory; the caller removes it (see removeDataDir). */
export function makeDataDir(){
  return mkdtemp(path.join(tmpdir(), "firehose-js-"))
}

export function removeDataDir(dir){
  return rm(dir, {recursive: true, force: true})
}

/**
 * Starts `firehose serve` and resolves once it prints its listening line.
 *
 * @param {object} [opts]
 * @param {number} [opts.port=0] - port to bind on 127.0.0.1 (0 = ephemeral)
 * @param {string} [opts.dataDir] - data directory to use; when omitted a fresh temp dir is
 *   created and removed again by stop()
 * @param {string[]} [opts.extraArgs] - more `firehose serve` flags (e.g. rate limits)
 */
export async function startServer({port = 0, dataDir, extraArgs = []} = {}){
  const bin = serverBinary()
  if(!existsSync(bin)){
    throw new Error(`firehose binary not found at ${bin}: build it (cargo build -p firehose-app --bin firehose) or set FIREHOSE_BIN`)
  }
  const ownsDataDir = !dataDir
  if(ownsDataDir){ dataDir = await makeDataDir() }

  const args = ["serve", "--bind", `127.0.0.1:${port}`, "--data-dir", dataDir, ...limitsOff(extraArgs), ...extraArgs]
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: {...process.env, RUST_BACKTRACE: process.env.RUST_BACKTRACE || "1"},
  })
  running.add(child)

  const stderrTail = []
  createInterface({input: child.stderr}).on("line", line => {
    if(process.env.FIREHOSE_TEST_LOG){ process.stderr.write(`[firehose ${child.pid}] ${line}\n`) }
    stderrTail.push(line)
    if(stderrTail.length > STDERR_TAIL_LINES){ stderrTail.shift() }
  })
  const describe = () => `${bin} ${args.join(" ")}` +
    (stderrTail.length ? `\n--- server stderr (tail) ---\n${stderrTail.join("\n")}` : "")

  const exited = new Promise(resolve => {
    child.once("exit", (code, signal) => { running.delete(child); resolve({code, signal}) })
  })

  const stdout = createInterface({input: child.stdout})
  const listening = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`server did not print its listening line within ${START_TIMEOUT_MS} ms: ${describe()}`))
    }, START_TIMEOUT_MS)
    child.once("error", err => { clearTimeout(timer); reject(new Error(`cannot spawn ${bin}: ${err.message}`)) })
    exited.then(({code, signal}) => {
      clearTimeout(timer)
      reject(new Error(`server exited (code ${code}, signal ${signal}) before listening: ${describe()}`))
    })
    stdout.on("line", line => {
      const match = LISTENING.exec(line.trim())
      if(match){ clearTimeout(timer); resolve({url: match[1], port: Number(match[2])}) }
    })
  }).catch(async err => {
    if(ownsDataDir){ await removeDataDir(dataDir) }
    throw err
  })

  let stopping = null
  return {
    ...listening,
    wsUrl: `${listening.url.replace(/^http/, "ws")}/socket`,
    dataDir,
    pid: child.pid,
    /** Resolves with {code, signal} once the process exited (for whatever reason). */
    exited,
    /** SIGTERM, then waits for the exit; resolves with {code, signal}. */
    stop(){
      stopping = stopping || (async () => {
        if(child.exitCode === null && child.signalCode === null){ child.kill("SIGTERM") }
        let timer
        const killed = new Promise(resolve => {
          timer = setTimeout(() => { child.kill("SIGKILL"); resolve() }, STOP_TIMEOUT_MS)
        })
        await Promise.race([exited, killed])
        clearTimeout(timer)
        const status = await exited
        if(ownsDataDir){ await removeDataDir(dataDir) }
        return status
      })()
      return stopping
    },
    describe,
  }
}

/**
 * startServer on a fixed port, retrying while the port is still held (e.g. by a server that
 * just exited), for at most `withinMs`.
 */
export async function startServerOnPort(port, dataDir, {withinMs = 10_000} = {}){
  const deadline = Date.now() + withinMs
  for(let attempt = 1; ; attempt++){
    try {
      return await startServer({port, dataDir})
    } catch(err){
      if(Date.now() >= deadline){
        throw new Error(`could not restart the server on port ${port} after ${attempt} attempts: ${err.message}`)
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
}
