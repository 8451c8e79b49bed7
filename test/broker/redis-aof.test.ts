// Where restarted Redis servers stand, read from their append-only files (issue 15 item 3: the
// whole-room cold start). Real redis-server 7 instances with the lab's persistence (appendonly
// yes, appendfsync always) and boot state (a replica of an address nothing listens on): a master
// and two replicas take writes and the primary's stamps, are killed -9 at different points, start
// again from their AOF, and RedisDriver.aofPosition() must order them as their data is ordered.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { JsonLogger } from "../../agent/env/log.ts";
import { cmpRedisPositions, formatAofPosition, STAMP_KEY } from "../../agent/resources/redis-aof.ts";
import { RedisDriver } from "../../agent/resources/redis.ts";
import { RedisHarness, sleep } from "./redis-harness.ts";

const PASSWORD = randomBytes(12).toString("hex");
const log = JsonLogger.create({ level: "warn", write: () => undefined });
const AOF = ["appendonly yes", "appendfsync always", "aof-use-rdb-preamble yes", "replicaof 127.0.0.1 1"];

interface Ctx { h: RedisHarness; d: RedisDriver[]; clients: Redis[] }
const s = suite<Ctx>("redis: positions read from the AOF after a restart", { h: new RedisHarness({ password: PASSWORD, conf: AOF }), d: [], clients: [] });

s.before(async (c) => {
  await c.h.start();
  c.d = [1, 2, 3].map((i) => new RedisDriver({ host: `127.0.3.${i}`, port: 6379, password: PASSWORD, announceIp: `127.0.3.${i}`, log, minReplicasToWrite: 1 }));
});
s.after(async (c) => {
  for (const x of c.clients) x.disconnect();
  for (const d of c.d) await d.close();
  await c.h.stop();
});

async function client(c: Ctx, i: number): Promise<Redis> {
  const r = new Redis({ host: `127.0.3.${i}`, port: 6379, password: PASSWORD, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: 2000 });
  r.on("error", () => {});
  c.clients.push(r);
  await r.connect();
  return r;
}

async function until(what: string, ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await ok().catch(() => false))) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

/** node1 master, node2 and node3 its replicas, in sync. */
async function form(c: Ctx): Promise<void> {
  await c.d[0]!.bootstrapMaster();
  for (const i of [1, 2]) await c.d[i]!.replicateFrom("127.0.3.1", 6379);
  for (const i of [1, 2]) await until(`node${i + 1} in sync`, async () => (await c.d[i]!.status()).linkUp);
  const m = await client(c, 1);
  await until("the master takes writes", async () => (await m.set("form", "1")) === "OK");
  await until("every replica acknowledged", async () => Number(await m.call("WAIT", "2", "1000")) === 2);
  // After a full sync a replica rewrites its AOF in the background, and until that is done what
  // it receives goes to a temp file its manifest does not name: killed meanwhile, it starts
  // again from its AOF as it was before the sync (measured, 7.0.15). Its position then says so
  // (it is behind), but this test wants each server's data where the test put it.
  for (const i of [2, 3]) {
    const r = await client(c, i);
    await until(`node${i}'s AOF rewrite after the sync done`, async () => /aof_rewrite_in_progress:0/.test(await r.info("persistence")) && /aof_rewrite_scheduled:0/.test(await r.info("persistence")) && /aof_last_bgrewrite_status:ok/.test(await r.info("persistence")) && /aof_rewrites:[1-9]/.test(await r.info("persistence")));
  }
}

async function writes(m: Redis, from: number, n: number, wait: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    await m.multi().set(`k${i}`, String(i)).incr("count").exec();
    if (wait) assert.ok(Number(await m.call("WAIT", String(wait), "1000")) >= wait, `write ${i}: WAIT ${wait}`);
  }
}

s("three servers killed at different points start again from their AOF: the positions order them as their data", async (c) => {
  await form(c);
  const m = await client(c, 1);
  await writes(m, 0, 20, 2);
  const first = await c.d[0]!.stamp();
  assert.is(first.stamp, 1, "the first stamp");
  await writes(m, 20, 10, 2);
  await c.h.kill9(3); // node3 has stamp 1 and the 10 writes after it
  await writes(m, 30, 5, 1); // node1 and node2 go on: 5 more after the stamp, none stamped
  await c.h.kill9(1);
  await c.h.kill9(2);
  for (const i of [1, 2, 3]) await c.h.startNode(i);
  const pos = await Promise.all(c.d.map((d) => d.aofPosition()));
  const [p1, p2, p3] = pos.map((p) => p!);
  // each write is MULTI, SET, INCR, EXEC: 4 commands
  assert.equal([p1!.stamp, p2!.stamp, p3!.stamp], [1, 1, 1], "the stamp every server loaded");
  assert.is(p3!.after, 10 * 4, "node3: the 10 writes after the stamp");
  assert.is(p2!.after, 15 * 4, "node2: 15 writes after the stamp");
  assert.is(p1!.after, p2!.after, "node1 (the master) and node2 stand at the same point");
  assert.ok(pos.every((p) => p!.exact), "every last stamp is in an incr file");
  const f = pos.map((p) => formatAofPosition(p!));
  assert.ok(cmpRedisPositions(f[1]!, f[2]!) > 0 && cmpRedisPositions(f[0]!, f[1]!) === 0, `node2 ahead of node3, equal to node1: ${f.join(" ")}`);
  // ... as the data says
  const counts = await Promise.all([1, 2, 3].map(async (i) => Number(await (await client(c, i)).get("count"))));
  assert.equal(counts, [35, 35, 30], "the data behind the positions");
  // a restarted server is behind one that has been replicating since (issue 22)
  assert.ok(cmpRedisPositions("17", f[0]!) > 0 && cmpRedisPositions(f[0]!, "0") < 0, "a live offset is ahead of any AOF position");
});

s("a stamp folded into the base by a rewrite: the position says it is a lower bound", async (c) => {
  // node2 (127.0.3.2), now a replica of nothing holding the data: make it a master of its own
  await c.d[1]!.bootstrapMaster();
  const m = await client(c, 2);
  await c.d[1]!.unfence();
  await c.d[1]!.promote();
  // without replicas min-replicas-to-write 1 refuses writes: this is about the file, not the gate
  await m.config("SET", "min-replicas-to-write", "0");
  await m.incr(STAMP_KEY);
  await m.set("after-stamp", "1");
  await m.call("BGREWRITEAOF");
  await until("the rewrite done", async () => /aof_rewrite_in_progress:0/.test(await m.info("persistence")) && /aof_rewrite_scheduled:0/.test(await m.info("persistence")));
  await m.set("after-rewrite", "1");
  await c.h.kill9(2);
  await c.h.startNode(2);
  const p = (await c.d[1]!.aofPosition())!;
  assert.is(p.stamp, 2, "the stamp it loaded from the base");
  assert.is(p.after, 1, "only the write after the rewrite is counted");
  assert.is(p.exact, false, "not exact: the stamp is in the base");
});

s("a replica killed before its AOF rewrite after a full sync: it starts from what it had before, and its position says so", async (c) => {
  // node1 (127.0.3.1) has everything; node3 resyncs from it and is killed at once
  await c.d[0]!.promote();
  const m = await client(c, 1);
  await m.config("SET", "min-replicas-to-write", "0");
  await m.incr(STAMP_KEY);
  await c.d[2]!.replicateFrom("127.0.3.1", 6379);
  await until("node3 synced", async () => (await c.d[2]!.status()).linkUp);
  await c.h.kill9(3);
  await c.h.startNode(3);
  const [p1, p3] = [await c.d[0]!.info(), (await c.d[2]!.aofPosition())!];
  const n3 = Number(await (await client(c, 3)).get("count"));
  // either the rewrite finished (node3 has the data, stamp 2) or not (what it had: 30, stamp 1)
  assert.ok((p3.stamp === 2 && n3 === 35) || (p3.stamp === 1 && n3 === 30), `node3 at stamp ${p3.stamp} holds count ${n3}`);
  assert.is(p1.role, "master");
});

s("a server without an AOF has no AOF position", async (c) => {
  const m = await client(c, 3);
  await m.config("SET", "appendonly", "no");
  assert.is(await c.d[2]!.aofPosition(), null);
});

s.run();
