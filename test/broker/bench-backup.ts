// Figures for docs/backup.md (issue 23): a base backup of a BENCH_MB (default 1024) MB database
// taken on a replica with mariadb-backup (time, size), the primary's write latency while it runs
// against before (ratio, same run), the restore of it into a new server, its verification; then
// an incremental backup after a day's worth of change (BENCH_INC_MB, default 10, of new rows and
// an UPDATE of 0.1 % of the old ones) and the restore of the chain (full + incremental).
// Real mariadbd on loopback (mariadb-harness.ts). Not part of make test:
//   node --import tsx test/broker/bench-backup.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { listBackups } from "../../agent/backup/manifest.ts";
import { incrementalParent } from "../../agent/backup/chain.ts";
import { datadirIdentity, takeMysqlBackup } from "../../agent/backup/mysql-backup.ts";
import { startFromBase, verifyMysql } from "../../agent/backup/restore.ts";
import { stopScratch } from "../../agent/backup/scratch.ts";
import { startMariadb } from "./mariadb-harness.ts";

const MB = Number(process.env.BENCH_MB ?? 1024);
const INC_MB = Number(process.env.BENCH_INC_MB ?? 10);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const h = await startMariadb({ nodes: 2 });
  const root = mkdtempSync(join(tmpdir(), "bollard-bench-backup-"));
  let stop = false;
  try {
    const p = h.server(1);
    await h.sql(1, "CREATE DATABASE app; CREATE TABLE app.w (id INT PRIMARY KEY AUTO_INCREMENT, v INT) ENGINE=InnoDB;");
    await h.sql(2, `SET GLOBAL read_only=1; CHANGE MASTER TO MASTER_HOST='${p.host}', MASTER_PORT=${p.port}, MASTER_USER='${h.admin.user}', MASTER_PASSWORD='${h.admin.password}', MASTER_USE_GTID=slave_pos; START SLAVE;`);
    // the bulk only on the replica, outside the binlog (what is copied is what counts; the
    // primary's CPU stays for the writer whose latency is measured)
    const g0 = performance.now();
    const rows = Math.round((MB * 1e6) / 1100);
    const pos = (await h.sql(1, "SELECT @@gtid_binlog_pos;")).trim();
    await h.sql(2, `SELECT MASTER_GTID_WAIT('${pos}', 30);`);
    const r = await mysql.createConnection({ host: h.server(2).host, port: h.server(2).port, user: h.admin.user, password: h.admin.password, database: "app" });
    await r.query("SET sql_log_bin=0");
    await r.query("CREATE TABLE app.bulk (id INT PRIMARY KEY, pad CHAR(255), pad2 CHAR(255), pad3 CHAR(255), pad4 CHAR(200)) ENGINE=InnoDB");
    for (let a = 1; a <= rows; a += 100_000) {
      await r.query(`INSERT INTO app.bulk SELECT seq, REPEAT(CHAR(65 + seq % 26), 255), REPEAT('b', 255), REPEAT('c', 255), REPEAT('d', 200) FROM seq_${a}_to_${Math.min(rows, a + 99_999)}`);
    }
    await r.end();
    const genS = (performance.now() - g0) / 1000;
    const c = await mysql.createConnection({ host: p.host, port: p.port, user: h.admin.user, password: h.admin.password });
    const lat: { t: number; ms: number }[] = [];
    const writer = (async () => { while (!stop) { const t = performance.now(); await c.query("INSERT INTO app.w (v) VALUES (1)"); lat.push({ t, ms: performance.now() - t }); await sleep(10); } })();
    await sleep(5000);
    const b0 = performance.now();
    const m = await takeMysqlBackup({ conn: { host: h.server(2).host, port: h.server(2).port, user: h.admin.user, password: h.admin.password }, datadir: join(h.server(2).dir, "data"), target: join(root, "t"), id: "bench", name: "mysql", node: "node2", storedOn: "node3", now: Date.now });
    const b1 = performance.now();
    await sleep(5000);
    stop = true;
    await writer;
    await c.end();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const before = mean(lat.filter((x) => x.t < b0).map((x) => x.ms));
    const during = mean(lat.filter((x) => x.t >= b0 && x.t < b1).map((x) => x.ms));
    const after = mean(lat.filter((x) => x.t >= b1).map((x) => x.ms));
    const [b] = (await listBackups(join(root, "t"))).backups;
    const r0 = performance.now();
    const x = await startFromBase(b!, { dir: join(root, "restored"), host: "127.0.2.9", port: 33997 });
    const restoreS = (performance.now() - r0) / 1000;
    await stopScratch(x);
    const v = await verifyMysql(b!, join(root, "verify"), "127.0.2.9", 33996, Date.now);
    // a day's change on the replica, then an incremental on the full one
    const r2 = await mysql.createConnection({ host: h.server(2).host, port: h.server(2).port, user: h.admin.user, password: h.admin.password, database: "app" });
    await r2.query("SET sql_log_bin=0");
    const incRows = Math.round((INC_MB * 1e6) / 1100);
    await r2.query(`INSERT INTO app.bulk SELECT ${rows} + seq, REPEAT('n', 255), REPEAT('b', 255), REPEAT('c', 255), REPEAT('d', 200) FROM seq_1_to_${incRows}`);
    await r2.query("UPDATE app.bulk SET pad2 = REPEAT('u', 255) WHERE id % 1000 = 0");
    await r2.end();
    const datadir = join(h.server(2).dir, "data");
    const choice = incrementalParent((await listBackups(join(root, "t"))).backups.map((x) => x.manifest), "node2", await datadirIdentity(datadir), 6);
    if (!choice.parent) throw new Error(`expected an incremental: ${choice.why}`);
    const i0 = performance.now();
    const inc = await takeMysqlBackup({ conn: { host: h.server(2).host, port: h.server(2).port, user: h.admin.user, password: h.admin.password }, datadir, target: join(root, "t"), id: "bench-inc", name: "mysql", node: "node2", storedOn: "node3", now: Date.now, parent: choice.parent });
    const incS = (performance.now() - i0) / 1000;
    const all = (await listBackups(join(root, "t"))).backups;
    const c0 = performance.now();
    const y = await startFromBase(all.find((x) => x.manifest.id === "bench-inc")!, { dir: join(root, "restored-chain"), host: "127.0.2.9", port: 33997 }, all);
    const chainS = (performance.now() - c0) / 1000;
    await stopScratch(y);
    console.log(`bench-backup: db_mb=${MB} generate_s=${genS.toFixed(1)} backup_s=${((b1 - b0) / 1000).toFixed(1)} backup_mb=${(m.bytes / 1e6).toFixed(0)} ` +
      `incremental_change_mb=${INC_MB} incremental_s=${incS.toFixed(1)} incremental_mb=${(inc.bytes / 1e6).toFixed(0)} restore_chain_s=${chainS.toFixed(1)} ` +
      `restore_base_s=${restoreS.toFixed(1)} verify_s=${(v.ms / 1000).toFixed(1)} verify_ok=${v.ok} ` +
      `write_ms_before=${before.toFixed(2)} during=${during.toFixed(2)} after=${after.toFixed(2)} ratio_during_before=${(during / before).toFixed(2)} writes=${lat.length}`);
  } finally {
    stop = true;
    await h.stop();
    rmSync(root, { recursive: true, force: true });
  }
})();
