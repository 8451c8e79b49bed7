// Incremental MariaDB base backups against real MariaDB 10.11 and mariadb-backup on loopback
// (issue 23 item 1, agent/backup/chain.ts): a full backup on a replica, then two incrementals
// built on it (each only the pages changed since its parent's checkpoint), a restore and a
// verification of the last one applying the chain to a copy (the stored backups unchanged), and
// a chain with a corrupted link refused. Sizes and times are printed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { incrementalParent, restorable, restoreChain } from "../../agent/backup/chain.ts";
import { listBackups, type Listed } from "../../agent/backup/manifest.ts";
import { datadirIdentity, takeMysqlBackup } from "../../agent/backup/mysql-backup.ts";
import { planRestore } from "../../agent/backup/plan.ts";
import { restoreMysql, verifyMysql } from "../../agent/backup/restore.ts";
import { stopScratch } from "../../agent/backup/scratch.ts";
import { checkSums } from "../../agent/backup/sums.ts";
import { sql } from "../../agent/backup/tools.ts";
import { MariadbTemplate, startMariadb, type MariadbHarness } from "./mariadb-harness.ts";

let template: MariadbTemplate;
const I = suite<{ h: MariadbHarness; root: string }>("mysql incremental base backups");
I.before(async () => { template = await MariadbTemplate.create(); });
I.after(() => template.remove());
I.before.each(async (ctx) => {
  ctx.h = await startMariadb({ nodes: 2, template });
  ctx.root = mkdtempSync(join(tmpdir(), "bollard-backup-inc-"));
  const p = ctx.h.server(1);
  await ctx.h.sql(1, "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT NOT NULL, pad CHAR(200) NOT NULL DEFAULT 'x') ENGINE=InnoDB;");
  await ctx.h.sql(2, `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=1; CHANGE MASTER TO MASTER_HOST='${p.host}', MASTER_PORT=${p.port}, MASTER_USER='${ctx.h.admin.user}', MASTER_PASSWORD='${ctx.h.admin.password}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;`);
});
I.after.each(async (ctx) => {
  await ctx.h.stop();
  rmSync(ctx.root, { recursive: true, force: true });
});

const figures: string[] = [];
const conn = (h: MariadbHarness, i: number) => ({ host: h.server(i).host, port: h.server(i).port, user: h.admin.user, password: h.admin.password });

async function caughtUp(h: MariadbHarness): Promise<string> {
  const pos = (await h.sql(1, "SELECT @@gtid_binlog_pos;")).trim();
  assert.is((await h.sql(2, `SELECT MASTER_GTID_WAIT('${pos}', 20);`)).trim(), "0", `replica reached ${pos}`);
  return pos;
}

/** n rows in batches of 1000 (one transaction each). */
async function rows(h: MariadbHarness, n: number, v: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) await h.sql(1, `USE app; INSERT INTO app.t (v) SELECT ${v} FROM seq_1_to_${Math.min(1000, n - i)};`);
}

const checksum = async (h: MariadbHarness, i: number) => (await h.sql(i, "CHECKSUM TABLE app.t;")).trim().split("\t")[1];

I("a full backup, two incrementals on it; restored and verified through the chain; a corrupted link refuses the chain", async ({ h, root }) => {
  const target = join(root, "t");
  const datadir = join(h.server(2).dir, "data");
  const source = await datadirIdentity(datadir);
  const take = async (id: string) => {
    const all = (await listBackups(target)).backups.map((b) => b.manifest);
    const c = incrementalParent(all, "node2", source, 2);
    const t0 = performance.now();
    const m = await takeMysqlBackup({ conn: conn(h, 2), datadir, target, id, name: "mysql", node: "node2", storedOn: "node1", now: Date.now, parent: c.parent });
    return { m, ms: performance.now() - t0, why: c.why, sum: await checksum(h, 2), gtid: await caughtUp(h) };
  };
  await rows(h, 20_000, 1);
  await caughtUp(h);
  const b1 = await take("b1");
  assert.is(b1.m.parent, null, b1.why);
  assert.match(b1.why, /the first backup/);
  await rows(h, 1000, 2);
  await h.sql(1, "UPDATE app.t SET v = 3 WHERE id % 100 = 0;");
  await caughtUp(h);
  const b2 = await take("b2");
  assert.is(b2.m.parent, "b1", b2.why);
  assert.is(b2.m.detail.fromLsn, b1.m.detail.toLsn, "from the parent's checkpoint");
  await h.sql(1, "DELETE FROM app.t WHERE id % 7 = 0;");
  await caughtUp(h);
  const b3 = await take("b3");
  assert.is(b3.m.parent, "b2");
  assert.is(b3.m.detail.depth, 2);
  assert.ok(b2.m.bytes < b1.m.bytes / 2, `an incremental is smaller: ${b2.m.bytes} vs ${b1.m.bytes}`);
  figures.push(`full ${b1.m.bytes} bytes in ${Math.round(b1.ms)} ms; incremental (1000 rows + an UPDATE of 1 %) ${b2.m.bytes} bytes in ${Math.round(b2.ms)} ms; incremental (a DELETE of 1/7) ${b3.m.bytes} bytes in ${Math.round(b3.ms)} ms`);
  // at most 2 incrementals: the next one is full; another datadir: full
  const all = (await listBackups(target)).backups;
  assert.match(incrementalParent(all.map((b) => b.manifest), "node2", source, 2).why, /ends a chain of 2/);
  assert.match(incrementalParent(all.map((b) => b.manifest), "node2", "ibdata1:1:2", 2).why, /another datadir/);
  assert.match(incrementalParent(all.map((b) => b.manifest), "node1", source, 2).why, /taken on node2/);

  const before = new Map<string, string>();
  for (const b of all) before.set(b.manifest.id, String(await checkSums(b.dir)));
  // a restore of b3's point: the full copy, b2 and b3 applied to it
  const plan = planRestore(all.map((b) => ({ id: b.manifest.id, gtid: String(b.manifest.detail.gtid), finishedMs: Date.parse(b.manifest.finishedAt), dir: b.dir })), { files: [], caughtUpMs: null }, { gtid: b3.gtid });
  assert.ok(plan.ok, plan.ok ? "" : plan.error);
  assert.is(plan.ok && plan.plan.base.id, "b3");
  const base = all.find((b) => b.manifest.id === "b3")!;
  const t0 = performance.now();
  const r = await restoreMysql(plan.ok ? plan.plan : (null as never), base, { dir: join(root, "restored"), host: "127.0.2.9", port: 33987 }, all);
  const restoreMs = performance.now() - t0;
  try {
    assert.is(r.reached, b3.gtid);
    const got = (await sql({ socket: r.scratch.socket!, user: "root", password: "" }, "CHECKSUM TABLE app.t;")).trim().split("\t")[1];
    assert.is(got, b3.sum, "the restored table is the replica's at b3");
  } finally {
    await stopScratch(r.scratch);
  }
  for (const b of all) assert.is(String(await checkSums(b.dir)), before.get(b.manifest.id), `${b.manifest.id} unchanged by the restore`);
  const v = await verifyMysql(base, join(root, "verify"), "127.0.2.9", 33986, Date.now, all);
  assert.ok(v.ok, v.error ?? "");
  assert.is(v.gtid, b3.gtid);
  figures.push(`restore of full + 2 incrementals ${Math.round(restoreMs)} ms; verification ${Math.round(v.ms)} ms, ${v.rows["app.t"]} rows`);

  // one byte of b2 changed: b3 (which needs it) is refused, b1 is still restorable
  const listed = (await listBackups(target)).backups;
  const b2dir = listed.find((b) => b.manifest.id === "b2")!.dir;
  const f = join(b2dir, "data", "app", "t.ibd.delta");
  const bytes = readFileSync(f);
  bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
  writeFileSync(f, bytes);
  const b3l = listed.find((b) => b.manifest.id === "b3")! as Listed;
  const bad = await verifyMysql(b3l, join(root, "verify2"), "127.0.2.9", 33986, Date.now, listed);
  assert.not.ok(bad.ok);
  assert.match(bad.error!, /backup b2 \(in the chain of b3\): checksums: data\/app\/t.ibd.delta changed/);
  const after = (await listBackups(target)).backups.map((b) => b.manifest);
  assert.is(after.find((m) => m.id === "b3")!.state, "bad");
  const ch = restoreChain(after, "b3");
  assert.not.ok(ch.ok);
  assert.equal(restorable(after).map((m) => m.id), ["b1", "b2"], "b2's own checksums are not yet known bad: only a verification of b2 marks it");
});

I.after(() => { if (figures.length) console.log(`\n  figures:\n${figures.map((f) => `    ${f}`).join("\n")}`); });
I.run();
