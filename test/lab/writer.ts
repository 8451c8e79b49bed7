// A client of the appliance, as the fleet platform's microservices are: it writes through
// the VIP and the portal, and records every write the server acknowledged (one line per
// ack: "<id> <wall ms>"), so a test can check that none is lost after a failover and
// measure how long writes paused. Run inside the lab's client namespace:
//   ip netns exec client node --import tsx test/lab/writer.ts --out DIR [--mysql VIP:PORT] [--redis VIP:PORT]
//     [--redis-sentinels IP:PORT,...] find the Redis master through Sentinel (make bench-peers), not at --redis
//     [--redis-wait]                  a Redis write counts as acknowledged once WAIT 1 confirms a replica has it
//     [--sample node1=IP,node2=IP]    every 100 ms, which nodes' MySQL and Redis are writable ("samples")
// Stops on SIGTERM or after --seconds.
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";

const { values } = parseArgs({
  options: {
    out: { type: "string" }, mysql: { type: "string" }, redis: { type: "string" },
    user: { type: "string", default: "app" }, "password-file": { type: "string" }, database: { type: "string", default: "fms" },
    "every-ms": { type: "string", default: "20" }, seconds: { type: "string", default: "600" },
    /** a MySQL statement not answered within this is abandoned (the id is never reused) */
    "timeout-ms": { type: "string", default: "1000" },
    // ids start here: each writer of a lab's life writes the same table and keys, and reusing
    // ids made a later writer spend its time on "Duplicate entry" errors (and a Redis key
    // left by an earlier one would hide a loss)
    "id-base": { type: "string", default: String(Date.now() * 1000) },
    "redis-wait": { type: "boolean", default: false },
    sample: { type: "string" },
    "redis-sentinels": { type: "string" },
    "redis-master-name": { type: "string", default: "mymaster" },
  },
});
const out = values.out!;
mkdirSync(out, { recursive: true });
const every = Number(values["every-ms"]);
const timeoutMs = Number(values["timeout-ms"]);
let stop = false;
process.on("SIGTERM", () => (stop = true));
setTimeout(() => (stop = true), Number(values.seconds) * 1000).unref();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const split = (hp: string) => ({ host: hp.replace(/:\d+$/, ""), port: Number(hp.split(":").pop()) });

async function mysqlWriter(target: string): Promise<void> {
  const file = join(out, "mysql.acked");
  const errs = join(out, "mysql.errors");
  const password = values["password-file"] ? readFileSync(values["password-file"], "utf8").trim() : "";
  let id = Number(values["id-base"]);
  let conn: mysql.Connection | null = null;
  while (!stop) {
    try {
      if (!conn) {
        // 500 ms: a connect that went to the dead VIP holder just before the new one announced
        // itself waits this long before the next try (SYNs are retransmitted only after 1 s)
        conn = await mysql.createConnection({ ...split(target), user: values.user, password, database: values.database, connectTimeout: 500 });
        appendFileSync(join(out, "mysql.connects"), `${Date.now()}\n`); // the VIP and a portal answered
        await conn.query("CREATE TABLE IF NOT EXISTS writes (id BIGINT PRIMARY KEY, at BIGINT NOT NULL)");
      }
      const next = id + 1;
      // A statement that outlives a failover is abandoned, as a client with a timeout would.
      // The timeout is part of every figure: a write in flight when its server lost power gets
      // no answer, and its TCP retransmissions (backing off 0.2, 0.4, 0.8, 1.6 s) meet the new
      // VIP holder's RST only late; with 3 s every failover measured at least 3 s.
      await Promise.race([conn.query("INSERT INTO writes (id, at) VALUES (?, ?)", [next, Date.now()]), sleep(timeoutMs).then(() => { throw new Error("write timed out"); })]);
      id = next;
      appendFileSync(file, `${id} ${Date.now()}\n`);
    } catch (e) {
      appendFileSync(errs, `${Date.now()} ${(e as Error).message}\n`);
      const c = conn;
      conn = null;
      c?.destroy();
      id += 1; // the attempted id may or may not have committed: never reuse it
      await sleep(50);
      continue;
    }
    await sleep(every);
  }
  conn?.destroy();
}

async function redisWriter(target: string): Promise<void> {
  const file = join(out, "redis.acked");
  const errs = join(out, "redis.errors");
  // Through Sentinel discovery, as the Sentinel documentation asks of clients: ask a Sentinel
  // for the master on every (re)connect (ioredis's sentinel mode), the same timeouts otherwise.
  const where = values["redis-sentinels"]
    ? { sentinels: values["redis-sentinels"].split(",").map(split), name: values["redis-master-name"], sentinelRetryStrategy: () => 50, sentinelCommandTimeout: 500 }
    : split(target);
  const r = new Redis({ ...where, lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500, commandTimeout: 1000, retryStrategy: () => 50, enableOfflineQueue: false });
  r.on("error", () => undefined);
  let id = Number(values["id-base"]);
  while (!stop) {
    id += 1;
    try {
      if (r.status === "wait" || r.status === "end") await r.connect().catch(() => undefined);
      await r.set(`w:${id}`, String(Date.now()));
      // WAIT 1 500: acknowledged once a replica has it (what a failover must not lose)
      if (values["redis-wait"] && Number(await r.call("WAIT", "1", "500")) < 1) throw new Error("WAIT 1: no replica confirmed it");
      appendFileSync(file, `${id} ${Date.now()}\n`);
    } catch (e) {
      appendFileSync(errs, `${Date.now()} ${(e as Error).message}\n`);
      // A timed-out command leaves ioredis on a connection to a powered-off server, where the
      // next commands time out too until a TCP retransmission meets the new VIP holder's RST
      // (seconds of backoff): drop it and connect afresh, as the MySQL writer does.
      if (/timed out/i.test((e as Error).message)) r.disconnect();
      await sleep(50);
      continue;
    }
    await sleep(every);
  }
  r.disconnect();
}

/**
 * Every 100 ms, which node's MySQL (read_only off) and Redis (a master without the fence bound)
 * would take a write, on the nodes' own addresses: one line "<ms> mysql=node1,... redis=node1,..."
 * per sample (a node that does not answer within 80 ms is left out: it takes no write then).
 * Two names in one list are two writable primaries at once.
 */
async function sampler(spec: string): Promise<void> {
  const nodes = spec.split(",").map((x) => x.split("=")).map(([n, ip]) => ({ n: n!, ip: ip! }));
  const password = values["password-file"] ? readFileSync(values["password-file"], "utf8").trim() : "";
  const my = new Map<string, mysql.Connection | null>();
  const rd = new Map(nodes.map(({ n, ip }) => {
    const c = new Redis({ host: ip, port: 6379, lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 80, commandTimeout: 80, retryStrategy: () => null, enableOfflineQueue: false });
    c.on("error", () => undefined);
    return [n, c] as const;
  }));
  const within = <T,>(p: Promise<T>) => Promise.race([p, sleep(80).then(() => { throw new Error("timeout"); })]);
  const mysqlW = async (n: string, ip: string) => {
    try {
      let c = my.get(n) ?? null;
      if (!c) { c = await within(mysql.createConnection({ host: ip, port: 3306, user: values.user, password, connectTimeout: 80 })); my.set(n, c); }
      const [rows] = await within(c.query("SELECT @@GLOBAL.read_only AS ro"));
      return Number((rows as { ro: unknown }[])[0]?.ro) === 0;
    } catch {
      my.get(n)?.destroy();
      my.set(n, null);
      return false;
    }
  };
  const redisW = async (n: string) => {
    const c = rd.get(n)!;
    try {
      if (c.status !== "ready") await within(c.connect()).catch(() => undefined);
      const [info, gate] = await within(Promise.all([c.call("INFO", "replication"), c.call("CONFIG", "GET", "min-replicas-to-write")]));
      return /role:master/.test(String(info)) && Number((gate as string[])[1]) < 2147483647;
    } catch {
      c.disconnect();
      return false;
    }
  };
  while (!stop) {
    const t = Date.now();
    const [m, r] = await Promise.all([Promise.all(nodes.map(({ n, ip }) => mysqlW(n, ip))), Promise.all(nodes.map(({ n }) => redisW(n)))]);
    appendFileSync(join(out, "samples"), `${t} mysql=${nodes.filter((_, i) => m[i]).map((x) => x.n).join(",")} redis=${nodes.filter((_, i) => r[i]).map((x) => x.n).join(",")}\n`);
    await sleep(Math.max(0, 100 - (Date.now() - t)));
  }
  for (const c of my.values()) c?.destroy();
  for (const c of rd.values()) c.disconnect();
}

await Promise.all([values.mysql ? mysqlWriter(values.mysql) : null, values.redis || values["redis-sentinels"] ? redisWriter(values.redis ?? "") : null, values.sample ? sampler(values.sample) : null]);
