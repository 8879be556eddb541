// A cluster of real firehose nodes for the cluster tests: N server processes on one
// PostgreSQL database of their own and one Redis broker (a namespace of their own, so
// concurrent runs on one Redis never hear each other).
//
//   const cluster = await startCluster(2)
//   cluster.nodes[0].url, cluster.nodes[1].wsUrl …
//   await cluster.query("SELECT count(*) FROM bookmarks")   // psql, after or during
//   await cluster.stop()                                     // stops the nodes, drops the database
//
// Where: $FIREHOSE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test) and
// $FIREHOSE_TEST_REDIS (default redis://127.0.0.1:6379). `psql` must be on the PATH.

import {execFile} from "node:child_process"
import {mkdtemp, rm} from "node:fs/promises"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {promisify} from "node:util"

import {startServer} from "../server.mjs"

const run = promisify(execFile)

export const POSTGRES = process.env.FIREHOSE_TEST_POSTGRES || "postgres://postgres@127.0.0.1:5432/test"
export const REDIS = process.env.FIREHOSE_TEST_REDIS || "redis://127.0.0.1:6379"

/** `POSTGRES` with its database name replaced. */
function withDatabase(name){
  const url = new URL(POSTGRES)
  url.pathname = `/${name}`
  return url.toString()
}

/** Runs one SQL statement through psql against `url`; resolves with its unaligned rows. */
export async function psql(url, sql){
  const {stdout} = await run("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
  return stdout.trim().split("\n").filter(line => line.length > 0)
}

/** Deletes the namespace's keys from Redis (with redis-cli; left to expire without it). */
async function forgetNamespace(namespace){
  const url = new URL(REDIS)
  const at = ["-h", url.hostname, "-p", url.port || "6379"]
  try {
    const {stdout} = await run("redis-cli", [...at, "--scan", "--pattern", `${namespace}:*`])
    const keys = stdout.split("\n").filter(key => key.length > 0)
    if(keys.length > 0){ await run("redis-cli", [...at, "DEL", ...keys]) }
  } catch {
    // No redis-cli: the keys stay (a few small ones per run; history streams expire).
  }
}

/**
 * Starts `n` nodes; `extraArgs` go to every node. Each node is a startServer() handle
 * (url, wsUrl, pid, stop, exited…).
 */
export async function startCluster(n, {extraArgs = []} = {}){
  const name = `firehose_cluster_${process.pid}_${Date.now()}`
  await psql(POSTGRES, `CREATE DATABASE ${name}`)
  const databaseUrl = withDatabase(name)
  // One uploads directory for every node, as the nodes of a real cluster share one.
  const uploads = await mkdtemp(join(tmpdir(), "firehose-cluster-uploads-"))
  const args = ["--database-url", databaseUrl, "--pubsub-url", REDIS, "--pubsub-namespace", name,
    "--uploads-dir", uploads, ...extraArgs]
  const nodes = []
  const cluster = {
    nodes,
    databaseUrl,
    namespace: name,
    query: sql => psql(databaseUrl, sql),
    /** Starts one more node of this cluster. */
    async addNode(){
      const node = await startServer({extraArgs: args})
      nodes.push(node)
      return node
    },
    async stop(){
      await Promise.all(nodes.map(node => node.stop()))
      await psql(POSTGRES, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await forgetNamespace(name)
      await rm(uploads, {recursive: true, force: true})
    },
  }
  try {
    // One at a time: the first runs the migrations.
    for(let i = 0; i < n; i++){ await cluster.addNode() }
  } catch(err){
    await cluster.stop().catch(() => {})
    throw err
  }
  return cluster
}
