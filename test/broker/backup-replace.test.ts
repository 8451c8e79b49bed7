// `restore mysql --replace`'s data path against real MariaDB 10.11 on loopback (issue 23 item 3,
// agent/backup/replace.ts): a primary and a replica, a base backup on the replica and the binlog
// archive, a DROP TABLE (and a schema made after the point); the point before it restored beside
// them; the old data kept in a pinned backup; the primary made read-only (an application user is
// refused, the HA user still writes: READ ONLY ADMIN); the restored user schemas loaded into the
// primary. Afterwards the primary and the replica hold exactly the point's data (CHECKSUM TABLE
// of every table and row sets), the replica's GTID is the primary's, bollard's own schema is
// untouched, and the binlog archive went on without a gap. Figures are printed. And the agent's
// read-only promotion (a failover during a replace, ha/local.ts restoreHold) on a real replica.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BinlogArchiver, readArchive } from "../../agent/backup/archive.ts";
import { listBackups, newId, setPinned } from "../../agent/backup/manifest.ts";
import { takeMysqlBackup } from "../../agent/backup/mysql-backup.ts";
import { planRestore } from "../../agent/backup/plan.ts";
import { canWriteReadOnly, checksums, loadSchemas, position, userSchemas, waitReplica } from "../../agent/backup/replace.ts";
import { restoreMysql } from "../../agent/backup/restore.ts";
import { retain } from "../../agent/backup/retention.ts";
import { stopScratch, type Scratch } from "../../agent/backup/scratch.ts";
import type { MysqlConn } from "../../agent/backup/tools.ts";
import type { Logger } from "../../agent/env/env.ts";
import { mariadb } from "../../agent/resources/mysql-flavour.ts";
import { MysqlDriver } from "../../agent/resources/mysql.ts";
import { MariadbTemplate, startMariadb, type MariadbHarness } from "./mariadb-harness.ts";

const log = { info: () => undefined, warn: () => undefined, error: (m: string, f?: object) => console.log("archiver:", m, f ?? "") };
const conn = (h: MariadbHarness, i: number): MysqlConn => ({ host: h.server(i).host, port: h.server(i).port, user: h.admin.user, password: h.admin.password });
const rowsOf = async (c: MysqlConn, q: string) => {
  const x = await mysql.createConnection({ host: c.host, port: c.port, socketPath: c.socket, user: c.user, password: c.password });
  try { return JSON.stringify((await x.query(q))[0]); } finally { await x.end(); }
};

let template: MariadbTemplate;
const S = suite<{ h: MariadbHarness; root: string; scratch: Scratch | null; archiver: BinlogArchiver | null }>("restore --replace: the data path");
S.before(async () => { template = await MariadbTemplate.create(); });
S.after(() => template.remove());
S.before.each(async (ctx) => {
  ctx.h = await startMariadb({ nodes: 2, template });
  ctx.root = mkdtempSync(join(tmpdir(), "bollard-replace-test-"));
  ctx.scratch = null;
  ctx.archiver = null;
});
S.after.each(async (ctx) => {
  if (ctx.scratch) await stopScratch(ctx.scratch).catch(() => undefined);
  await ctx.archiver?.stop().catch(() => undefined);
  await ctx.h.stop();
  rmSync(ctx.root, { recursive: true, force: true });
});

S("replace to a point before a DROP TABLE: primary and replica hold exactly that point, GTIDs equal, the old data pinned", async (ctx) => {
  const { h, root } = ctx;
  await h.sql(1, [
    "CREATE DATABASE app; USE app;",
    "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(40) NOT NULL, b VARBINARY(16)) ENGINE=InnoDB;",
    "CREATE TABLE app.keepme (k INT PRIMARY KEY, note TEXT) ENGINE=InnoDB;",
    "INSERT INTO app.keepme VALUES (1, 'one'), (2, 'two'), (3, NULL);",
    "INSERT INTO app.t (v, b) SELECT CONCAT('row-', seq), UNHEX(MD5(seq)) FROM seq_1_to_2000;",
    "CREATE TRIGGER app.t_upper BEFORE INSERT ON app.t FOR EACH ROW SET NEW.v = UPPER(NEW.v);",
    // bollard's own data check schema (resources/mysql-verify.ts): never dropped, never loaded
    "CREATE DATABASE bollard; CREATE TABLE bollard.checksums (db VARCHAR(64), tbl VARCHAR(64), run BIGINT, PRIMARY KEY (db, tbl, run)); INSERT INTO bollard.checksums VALUES ('app', 't', 1);",
    "CREATE USER 'app'@'127.%' IDENTIFIED BY 'apppw'; GRANT ALL PRIVILEGES ON app.* TO 'app'@'127.%';",
  ].join("\n"));
  await h.sql(2, `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=1; CHANGE MASTER TO MASTER_HOST='${h.server(1).host}', MASTER_PORT=${h.server(1).port}, MASTER_USER='${h.admin.user}', MASTER_PASSWORD='${h.admin.password}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;`);
  const primary = conn(h, 1), replica = conn(h, 2);
  const target = join(root, "node2-target");
  ctx.archiver = new BinlogArchiver({ root: join(target, "binlog"), node: "node2", user: h.admin.user, password: h.admin.password, now: Date.now, log });
  await ctx.archiver.point({ node: "node1", host: h.server(1).host, port: h.server(1).port });
  await waitReplica(replica, (await position(primary)).binlogPos, 20);
  const base = await takeMysqlBackup({ conn: replica, datadir: join(h.server(2).dir, "data"), target, id: newId(Date.now(), "node2"), name: "mysql", node: "node2", storedOn: "node2", now: Date.now });
  // after the base backup: more rows (from the archive), then the point
  await h.sql(1, "USE app; INSERT INTO app.t (v) SELECT CONCAT('later-', seq) FROM seq_1_to_500; UPDATE app.keepme SET note = 'changed' WHERE k = 2; CREATE TABLE app.later (x INT PRIMARY KEY); INSERT INTO app.later VALUES (7);");
  const point = (await position(primary)).binlogPos;
  const atPoint = await checksums(primary);
  const rowsAtPoint = await rowsOf(primary, "SELECT * FROM app.t ORDER BY id");
  // the mistake, and what came after it
  await h.sql(1, "USE app; DROP TABLE app.keepme; INSERT INTO app.t (v) SELECT CONCAT('after-', seq) FROM seq_1_to_300; CREATE DATABASE junk; CREATE TABLE junk.x (i INT); INSERT INTO junk.x VALUES (1);");
  await waitReplica(replica, (await position(primary)).binlogPos, 20);
  await ctx.archiver.refresh();
  const plan = planRestore([{ id: base.id, gtid: String(base.detail.gtid), finishedMs: Date.parse(base.finishedAt), dir: join(target, "mysql", base.id) }], await readArchive([join(target, "binlog")]), { gtid: point });
  assert.ok(plan.ok, plan.ok ? "" : plan.error);
  if (!plan.ok) return;
  const [listedBase] = (await listBackups(target)).backups;
  const t0 = performance.now();
  const res = await restoreMysql(plan.plan, listedBase!, { dir: join(root, "restore", "mysql-r1"), host: "127.0.2.10", port: 33998 });
  ctx.scratch = res.scratch;
  const restoreMs = performance.now() - t0;
  const from: MysqlConn = { socket: res.scratch.socket!, user: "root", password: "" };
  assert.is(res.reached, point);
  assert.equal(await checksums(from), atPoint, "the scratch server holds the point");

  // the old data, kept: a base backup of the current data on the replica, pinned
  const pre = await takeMysqlBackup({ conn: replica, datadir: join(h.server(2).dir, "data"), target, id: newId(Date.now() + 1, "node2"), name: "mysql", node: "node2", storedOn: "node2", now: Date.now });
  await setPinned(join(target, "mysql", pre.id), "old data before restore --replace r1");
  const listed = (await listBackups(target)).backups.map((b) => b.manifest);
  assert.is(listed.find((m) => m.id === pre.id)?.pinned, "old data before restore --replace r1");
  assert.ok(retain(listed, { daily: 0, weekly: 0 }, Date.now() + 30 * 86_400_000).keep.some((k) => k.id === pre.id), "retention keeps the pinned backup");

  // writes stopped as the agent stops them: read_only; an application user is refused
  await h.sql(1, "SET GLOBAL read_only = 1;");
  const refused = await rowsOf({ ...primary, user: "app", password: "apppw" }, "INSERT INTO app.t (v) VALUES ('sneaky')").then(() => "written", (e: Error) => e.message);
  assert.match(refused, /read-only|--read-only/, "the application cannot write");
  assert.ok(await canWriteReadOnly(primary), "the HA user has READ ONLY ADMIN (ALL PRIVILEGES)");
  assert.not.ok(await canWriteReadOnly({ ...primary, user: "app", password: "apppw" }));

  const l0 = performance.now();
  const l = await loadSchemas(from, primary);
  const loadMs = performance.now() - l0;
  assert.equal(l.dropped, ["app", "junk"]);
  assert.equal(l.loaded, ["app"]);
  const after = await position(primary);
  assert.ok(after.readOnly, "still read-only: the load went through READ ONLY ADMIN");
  const replicaPos = await waitReplica(replica, after.binlogPos, 60);
  assert.is(replicaPos, after.binlogPos, "the replica's gtid_current_pos is the primary's");
  assert.match(after.binlogPos, /^0-1-\d+$/, "one GTID history, the primary's, continued");

  // exactly the point's data, on both
  const onPrimary = await checksums(primary), onReplica = await checksums(replica);
  assert.equal(onPrimary, atPoint, "the primary holds the point (CHECKSUM TABLE of every table)");
  assert.equal(onReplica, atPoint, "the replica holds the point");
  assert.equal(Object.keys(onPrimary).sort(), ["app.keepme", "app.later", "app.t"]);
  for (const c of [primary, replica]) {
    assert.is(await rowsOf(c, "SELECT * FROM app.t ORDER BY id"), rowsAtPoint);
    assert.is(await rowsOf(c, "SELECT k, note FROM app.keepme ORDER BY k"), JSON.stringify([{ k: 1, note: "one" }, { k: 2, note: "changed" }, { k: 3, note: null }]), "the dropped table is back, as it was at the point");
    assert.equal(await userSchemas(c), ["app"], "junk (made after the point) is gone");
    assert.is(await rowsOf(c, "SELECT COUNT(*) AS n FROM bollard.checksums"), JSON.stringify([{ n: 1 }]), "bollard's own schema is untouched");
    assert.match(await rowsOf(c, "SHOW TRIGGERS FROM app"), /t_upper/, "triggers come with the dump");
  }
  // writes resume: the application writes again, the replica follows
  await h.sql(1, "SET GLOBAL read_only = 0;");
  await rowsOf({ ...primary, user: "app", password: "apppw" }, "INSERT INTO app.t (v) VALUES ('resumed')");
  assert.is(await waitReplica(replica, (await position(primary)).binlogPos, 20), (await position(primary)).binlogPos);
  // the archive went on without a gap, through the replace
  const st = await ctx.archiver.refresh();
  assert.is(st.gap, null, `archive gap: ${st.gap}`);
  assert.is(st.behind, 0);
  console.log(`  figures: restore beside ${Math.round(restoreMs)} ms; load into the primary ${Math.round(loadMs)} ms (${(l.bytes / 1e6).toFixed(2)} MB of SQL, ${(JSON.parse(rowsAtPoint) as unknown[]).length + 4} rows); pre-replace backup ${(pre.bytes / 1e6).toFixed(1)} MB`);
});

const quiet = (): Logger => ({ debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m, f) => console.log(m, f), child: () => quiet() });

S("a failover's candidate during a replace: promoted read-only (relay log applied, replication stopped), writable only by the next promotion", async ({ h }) => {
  const d = h.servers.map((x) => new MysqlDriver({ flavour: mariadb, host: x.host, port: x.port, user: h.admin.user, password: h.admin.password, replUser: "repl", replPassword: "pw", replHost: "127.%", log: quiet() }));
  try {
    await d[0]!.bootstrapPrimary();
    await d[1]!.replicateFrom(h.server(1).host, h.server(1).port);
    await h.sql(1, "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20)); INSERT INTO d.t (v) VALUES ('a');");
    await waitReplica(conn(h, 2), (await position(conn(h, 1))).binlogPos, 20);
    await h.sql(2, "STOP SLAVE SQL_THREAD");
    await h.sql(1, "INSERT INTO d.t (v) VALUES ('in the relay log');");
    const full = (await position(conn(h, 1))).binlogPos;
    const r = await d[1]!.promote(2000, { readOnly: true });
    assert.is(r.gtid, full, "the relay log was applied");
    const st = await d[1]!.status();
    assert.is(st.readOnly, true, "still read-only");
    assert.is(st.role, "none", "no longer a replica: what the failover's applyRelayLog step accepts during a replace");
    assert.is(st.source, null);
    await d[1]!.promote(2000);
    assert.is((await d[1]!.status()).readOnly, false, "writable once promoted without the flag");
  } finally {
    await Promise.all(d.map((x) => x.close()));
  }
});

S.run();
