// Backups and point-in-time restore against real MariaDB 10.11 (mariadbd, mariadb-backup,
// mariadb-binlog) and redis-server on loopback (issue 23): a base backup on a replica under a
// writer, the binlog archive following a failover without a gap, a restore to one second before
// a DROP TABLE, a backup whose target vanishes half way, a corrupted backup's verification, a
// purged binlog as an archive gap, and a Redis snapshot on a replica. Figures are printed.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { Redis } from "ioredis";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BinlogArchiver, readArchive, readArchiveFiles } from "../../agent/backup/archive.ts";
import { isGood, listBackups, newId } from "../../agent/backup/manifest.ts";
import { takeMysqlBackup } from "../../agent/backup/mysql-backup.ts";
import { planRestore } from "../../agent/backup/plan.ts";
import { takeRedisBackup } from "../../agent/backup/redis-backup.ts";
import { gtidPos, restoreMysql, restoreRedisInto, verifyMysql, verifyRedis } from "../../agent/backup/restore.ts";
import { stopScratch } from "../../agent/backup/scratch.ts";
import { MariadbTemplate, startMariadb, type MariadbHarness } from "./mariadb-harness.ts";
import { RedisHarness } from "./redis-harness.ts";

const log = { info: () => undefined, warn: () => undefined, error: (m: string, f?: object) => console.log("archiver:", m, f ?? "") };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function replicate(h: MariadbHarness, primary: number, replicas: number[]): Promise<void> {
  const p = h.server(primary);
  for (const i of replicas) {
    await h.sql(i, `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=1; CHANGE MASTER TO MASTER_HOST='${p.host}', MASTER_PORT=${p.port}, MASTER_USER='${h.admin.user}', MASTER_PASSWORD='${h.admin.password}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;`);
  }
}

async function caughtUp(h: MariadbHarness, primary: number, replica: number): Promise<void> {
  const pos = (await h.sql(primary, "SELECT @@gtid_binlog_pos;")).trim();
  const r = (await h.sql(replica, `SELECT MASTER_GTID_WAIT('${pos}', 20);`)).trim();
  if (r !== "0") throw new Error(`replica ${replica} did not reach ${pos}`);
}

/** Inserts rows one by one into app.t on whichever server `target()` names; records each acked
 *  row's id and the wall time before it was sent and when it was acknowledged. */
class Writer {
  acked: { id: number; sentMs: number; ackMs: number }[] = [];
  latencies: number[] = [];
  errors = 0;
  private stop = false;
  private done: Promise<void> | null = null;
  constructor(private readonly target: () => { host: string; port: number }, private readonly admin: { user: string; password: string }) {}
  start(): void {
    this.done = (async () => {
      let c: mysql.Connection | null = null;
      let at = "";
      while (!this.stop) {
        const t = this.target();
        try {
          if (!c || at !== `${t.host}:${t.port}`) {
            await c?.end().catch(() => undefined);
            c = await mysql.createConnection({ host: t.host, port: t.port, user: this.admin.user, password: this.admin.password, connectTimeout: 1000 });
            at = `${t.host}:${t.port}`;
          }
          const sentMs = Date.now();
          const t0 = performance.now();
          const [r] = await c.query("INSERT INTO app.t (sent_ms) VALUES (?)", [sentMs]);
          this.latencies.push(performance.now() - t0);
          this.acked.push({ id: (r as mysql.ResultSetHeader).insertId, sentMs, ackMs: Date.now() });
        } catch {
          this.errors++;
          await c?.destroy();
          c = null;
          await sleep(50);
        }
        await sleep(5);
      }
      await c?.end().catch(() => undefined);
    })();
  }
  async halt(): Promise<void> { this.stop = true; await this.done; }
  /** mean latency of the writes from index a on */
  mean(a: number, b = this.latencies.length): number { const s = this.latencies.slice(a, b); return s.reduce((x, y) => x + y, 0) / Math.max(1, s.length); }
}

let template: MariadbTemplate;
const M = suite<{ h: MariadbHarness; root: string; cleanup: (() => Promise<unknown>)[] }>("mysql backup, archive, restore");
M.before(async () => { template = await MariadbTemplate.create(); });
M.after(() => template.remove());
M.before.each(async (ctx) => {
  ctx.h = await startMariadb({ nodes: 3, template });
  ctx.root = mkdtempSync(join(tmpdir(), "bollard-backup-test-"));
  ctx.cleanup = [];
  await ctx.h.sql(1, "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, sent_ms BIGINT NOT NULL, pad VARCHAR(200) DEFAULT 'x') ENGINE=InnoDB; CREATE TABLE app.keepme (k INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO app.keepme VALUES (1),(2),(3);");
  await replicate(ctx.h, 1, [2, 3]);
  await caughtUp(ctx.h, 1, 2);
});
M.after.each(async (ctx) => {
  for (const f of ctx.cleanup) await f().catch(() => undefined);
  await ctx.h.stop();
  rmSync(ctx.root, { recursive: true, force: true });
});

const conn = (h: MariadbHarness, i: number) => ({ host: h.server(i).host, port: h.server(i).port, user: h.admin.user, password: h.admin.password });

M("base backup on a replica, archive across a failover, restore to 1 s before a DROP TABLE", async ({ h, root, cleanup }) => {
  const target = join(root, "node3-target");
  let primary = 1;
  const w = new Writer(() => ({ host: h.server(primary).host, port: h.server(primary).port }), h.admin);
  const archiver = new BinlogArchiver({ root: join(target, "binlog"), node: "node3", user: h.admin.user, password: h.admin.password, now: Date.now, log });
  cleanup.push(() => w.halt(), () => archiver.stop());
  await archiver.point({ node: "node1", host: h.server(1).host, port: h.server(1).port });
  w.start();
  await sleep(1500);
  // the archive's lag under the writer: how long until the archive holds the primary's position
  // of a moment (polled every 20 ms, decoding the archived files each time)
  const lags: number[] = [];
  for (let i = 0; i < 5; i++) {
    const pos = (await h.sql(1, "SELECT @@gtid_binlog_pos;")).trim();
    const t = performance.now();
    const want = Number(pos.split("-")[2]);
    for (;;) {
      const files = await readArchiveFiles(join(target, "binlog"));
      if (files.some((f) => f.events.some((e) => e.seq >= want))) break;
      if (performance.now() - t > 10_000) throw new Error("the archive did not follow within 10 s");
      await sleep(20);
    }
    lags.push(performance.now() - t);
    await sleep(200);
  }
  lags.sort((a, b) => a - b);
  const before = w.latencies.length;
  const t0 = performance.now();
  const m = await takeMysqlBackup({ conn: conn(h, 2), datadir: join(h.server(2).dir, "data"), target, id: newId(Date.now(), "node2"), name: "mysql", node: "node2", storedOn: "node3", now: Date.now });
  const backupMs = performance.now() - t0;
  const during = w.latencies.length;
  await sleep(1500);
  const ratio = w.mean(before, during) / w.mean(during);
  assert.is(m.state, "complete");
  assert.match(String(m.detail.gtid), /^0-1-\d+$/);
  const lag = await archiver.refresh();
  // failover: the primary dies, server 2 is promoted, server 3 follows it, the archive re-points
  await h.kill9(1);
  await h.sql(2, "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0;");
  await replicate(h, 2, [3]);
  primary = 2;
  await archiver.point({ node: "node2", host: h.server(2).host, port: h.server(2).port });
  await sleep(2500);
  // the drop, at a recorded time, on the new primary
  const dropMs = Date.now();
  await h.sql(2, "DROP TABLE app.t;");
  await sleep(1200);
  await w.halt();
  await sleep(500);
  const st = await archiver.refresh();
  await archiver.stop();
  assert.is(st.gap, null, `archive gap: ${st.gap}`);
  assert.is(st.behind, 0, "the archive has all the new primary has");
  const segs = readdirSync(join(target, "binlog")).filter((s) => !s.endsWith(".json"));
  assert.is(segs.length, 2, "one segment per primary");

  const list = await listBackups(target);
  const base = list.backups[0]!;
  const archive = await readArchive([join(target, "binlog")]);
  const to = dropMs - 1000;
  const plan = planRestore([{ id: base.manifest.id, gtid: String(base.manifest.detail.gtid), finishedMs: Date.parse(base.manifest.finishedAt), dir: base.dir }], archive, { time: to });
  assert.ok(plan.ok, plan.ok ? "" : plan.error);
  if (!plan.ok) return;
  assert.equal(plan.plan.segments.length, 2, "the restore crosses the failover");
  const r0 = performance.now();
  const res = await restoreMysql(plan.plan, base, { dir: join(root, "state", "restore", "mysql-1"), // its parent does not exist yet
    host: "127.0.2.9", port: 33999 });
  cleanup.push(() => stopScratch(res.scratch));
  const restoreMs = performance.now() - r0;
  try {
    const c = await mysql.createConnection({ socketPath: res.scratch.socket!, user: "root" });
    const [rows] = await c.query("SELECT id, sent_ms FROM app.t");
    await c.end();
    const have = new Set((rows as { id: number }[]).map((r) => r.id));
    const point = Math.floor(to / 1000) * 1000;
    const mustHave = w.acked.filter((a) => a.ackMs < point);
    const mustNot = w.acked.filter((a) => a.sentMs >= point);
    assert.ok(mustHave.length > 50 && mustNot.length > 10, `writer: ${mustHave.length} before, ${mustNot.length} after`);
    assert.equal(mustHave.filter((a) => !have.has(a.id)).map((a) => a.id), [], "every row acked before the point is restored");
    assert.equal(mustNot.filter((a) => have.has(a.id)).map((a) => a.id), [], "no row sent after the point is restored");
    assert.ok(mustHave.some((a) => a.sentMs > Date.parse(base.manifest.finishedAt) + 2000 && a.id > 0), "rows from after the failover were needed");
    assert.is(res.reached, plan.plan.reach);
    console.log(`  figures: base backup ${Math.round(backupMs)} ms, ${(m.bytes / 1e6).toFixed(1)} MB; restore to a point ${Math.round(restoreMs)} ms (${plan.plan.transactions} transactions); ` +
      `archive lag under the writer: median ${Math.round(lags[2]!)} ms, max ${Math.round(lags[4]!)} ms (5 samples, 20 ms polls), behind by ${lag.behind} transaction(s) at one refresh; primary write latency while the backup ran / after: ${ratio.toFixed(2)}; writer ${w.acked.length} rows, ${w.errors} errors`);
  } finally {
    await stopScratch(res.scratch);
  }
  const refused = planRestore([{ id: base.manifest.id, gtid: String(base.manifest.detail.gtid), finishedMs: Date.parse(base.manifest.finishedAt), dir: base.dir }], archive, { time: Date.parse(base.manifest.startedAt) - 60_000 });
  assert.not.ok(refused.ok);
  if (!refused.ok) assert.match(refused.error, /^no backup covers .*restorable points: from .* \(gtid 0-1-\d+, base backup .*\) to .* \(gtid 0-2-\d+\)$/);
});

M("a target that vanishes mid-backup leaves nothing that looks complete; a corrupted backup verifies bad", async ({ h, root }) => {
  await h.sql(1, "CREATE TABLE app.big (id INT PRIMARY KEY AUTO_INCREMENT, pad CHAR(255)) ENGINE=InnoDB; USE app; INSERT INTO app.big (pad) SELECT REPEAT('y', 255) FROM seq_1_to_20000;");
  await caughtUp(h, 1, 2);
  const target = join(root, "gone");
  const id = newId(Date.now(), "node2");
  const p = takeMysqlBackup({ conn: conn(h, 2), datadir: join(h.server(2).dir, "data"), target, id, name: "mysql", node: "node2", storedOn: "node3", now: Date.now, extra: ["--throttle=5"] });
  await sleep(700);
  rmSync(target, { recursive: true, force: true });
  const err = await p.then(() => null, (e: Error) => e.message);
  assert.ok(err, "the backup failed");
  const l = await listBackups(target);
  assert.is(l.backups.length, 0, "no backup listed");

  const good = join(root, "good");
  await takeMysqlBackup({ conn: conn(h, 2), datadir: join(h.server(2).dir, "data"), target: good, id: "b1", name: "mysql", node: "node2", storedOn: "node3", now: Date.now });
  const [b] = (await listBackups(good)).backups;
  const ok = await verifyMysql(b!, join(root, "scratch1"), "127.0.2.9", 33998, Date.now);
  assert.ok(ok.ok, ok.error ?? "");
  assert.is(ok.rows["app.big"], 20000);
  assert.is(ok.rows["app.keepme"], 3);
  assert.is((await listBackups(good)).backups[0]!.manifest.state, "verified");
  // one byte changed in a table's data file
  const f = join(b!.dir, "data", "app", "keepme.ibd");
  const bytes = readFileSync(f);
  bytes[bytes.length - 5000] = bytes[bytes.length - 5000]! ^ 0xff;
  writeFileSync(f, bytes);
  const bad = await verifyMysql(b!, join(root, "scratch2"), "127.0.2.9", 33998, Date.now);
  assert.not.ok(bad.ok);
  assert.match(bad.error!, /checksums: data\/app\/keepme.ibd changed/);
  const after = (await listBackups(good)).backups[0]!.manifest;
  assert.is(after.state, "bad");
  assert.not.ok(isGood(after));
});

M("a new primary that purged the binlogs the archive needs: a gap, reported", async ({ h, root, cleanup }) => {
  const target = join(root, "t");
  const archiver = new BinlogArchiver({ root: join(target, "binlog"), node: "node3", user: h.admin.user, password: h.admin.password, now: Date.now, log: { ...log, error: () => undefined } });
  cleanup.push(() => archiver.stop());
  await archiver.point({ node: "node1", host: h.server(1).host, port: h.server(1).port });
  await h.sql(1, "INSERT INTO app.t (sent_ms) VALUES (1);");
  await sleep(800);
  await archiver.point(null);
  await h.sql(1, "INSERT INTO app.t (sent_ms) VALUES (2); INSERT INTO app.t (sent_ms) VALUES (3);");
  await caughtUp(h, 1, 2);
  // a binlog is purged only once InnoDB no longer needs it for crash recovery (its binlog
  // checkpoint): flush and purge until the first binlog left starts after what was archived
  const first = async () => (await h.sql(2, "SHOW BINARY LOGS;")).trim().split("\n")[0]!.split("\t")[0];
  for (let i = 0; i < 50 && (await first()) === "bin.000001"; i++) {
    await h.sql(2, "FLUSH BINARY LOGS;");
    await sleep(100);
    const last = (await h.sql(2, "SHOW BINARY LOGS;")).trim().split("\n").pop()!.split("\t")[0];
    await h.sql(2, `PURGE BINARY LOGS TO '${last}';`);
  }
  assert.is.not(await first(), "bin.000001", "the new primary purged its first binlogs");
  await archiver.point({ node: "node2", host: h.server(2).host, port: h.server(2).port });
  await sleep(1500);
  const st = await archiver.refresh();
  await archiver.stop();
  assert.ok(st.gap, `a gap is reported (${JSON.stringify(st)})`);
  assert.match(st.gap!, /node2 no longer has the binlogs after 0-1-\d+/);
});
M.run();

const R = suite<{ r: RedisHarness; root: string }>("redis snapshot");
R.before.each(async (ctx) => {
  ctx.r = await new RedisHarness({ nodes: 2 }).start();
  ctx.root = mkdtempSync(join(tmpdir(), "bollard-redis-backup-"));
});
R.after.each(async (ctx) => {
  await ctx.r.stop();
  rmSync(ctx.root, { recursive: true, force: true });
});
R("BGSAVE on the replica, copied, checked, verified, restored beside; refused on the master", async ({ r, root }) => {
  const [a, b] = r.instances;
  const m = new Redis({ host: a!.host, port: a!.port });
  const rep = new Redis({ host: b!.host, port: b!.port });
  await rep.replicaof(a!.host, String(a!.port));
  for (let i = 0; i < 500; i++) await m.set(`k${i}`, `v${i}`);
  await m.wait(1, 5000);
  const target = join(root, "t");
  const refused = await takeRedisBackup({ host: a!.host, port: a!.port, target, id: "r0", name: "redis", node: "node1", storedOn: "node3", now: Date.now }).then(() => "taken", (e: Error) => e.message);
  assert.match(refused, /not a replica: a snapshot is never taken on the master/);
  const man = await takeRedisBackup({ host: b!.host, port: b!.port, target, id: "r1", name: "redis", node: "node2", storedOn: "node3", now: Date.now });
  assert.is(man.detail.keys, 500);
  const [x] = (await listBackups(target)).backups;
  const v = await verifyRedis(x!, join(root, "scratch"), "127.0.3.9", 6399, Date.now);
  assert.ok(v.ok, v.error ?? "");
  const into = await restoreRedisInto(x!, { dir: join(root, "restored"), host: "127.0.3.9", port: 6398 });
  const c = new Redis({ host: "127.0.3.9", port: 6398 });
  assert.is(await c.get("k42"), "v42");
  assert.is(await c.dbsize(), 500);
  c.disconnect(); m.disconnect(); rep.disconnect();
  await stopScratch(into);
});
R.run();
