// A client of the appliance, as the fleet platform's microservices are: it writes through
// the VIP and the portal, and records every write the server acknowledged (one line per
// ack: "<id> <wall ms>"), so a test can check that none is lost after a failover and
// measure how long writes paused. Run inside the lab's client namespace:
//   ip netns exec client node --import tsx test/lab/writer.ts --out DIR [--mysql VIP:PORT] [--redis VIP:PORT]
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
  const r = new Redis({ ...split(target), lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500, commandTimeout: 1000, retryStrategy: () => 50, enableOfflineQueue: false });
  r.on("error", () => undefined);
  let id = Number(values["id-base"]);
  while (!stop) {
    id += 1;
    try {
      if (r.status === "wait" || r.status === "end") await r.connect().catch(() => undefined);
      await r.set(`w:${id}`, String(Date.now()));
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

await Promise.all([values.mysql ? mysqlWriter(values.mysql) : null, values.redis ? redisWriter(values.redis) : null]);
