// A MariaDB base backup (issue 23 item 1): `mariadb-backup --backup` on a replica's node into
// `<target>/mysql/<id>.tmp/data`, then `--prepare` there (the copy is made consistent once, at
// backup time, so a restore is a copy and a start, and a backup that cannot be prepared is never
// called complete), then manifest.json, then the rename to `<id>`. The GTID position comes from
// the backup's own xtrabackup_binlog_info (mariadb_backup_binlog_info in later versions) ("file<TAB>pos<TAB>gtid": the server's binlog
// position at the moment mariadb-backup held BACKUP STAGE BLOCK_COMMIT,
// https://mariadb.com/kb/en/mariadb-backup-and-backup-stage-commands/); on a replica with
// log_slave_updates that is the primary's GTIDs it applied. A failure removes the .tmp
// directory where it still can; where it cannot (the target vanished) nothing was renamed, so
// nothing looks complete.
//   Incremental (chain.ts decides when): `--incremental-lsn` of the parent's checkpoint, not
// prepared (an incremental can only be applied to a copy of its chain, at restore time); its
// verification restores the whole chain.
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeSums } from "./sums.ts";
import { finalize, tmpDir, writeManifest, type Manifest } from "./manifest.ts";
import { connArgs, dirBytes, run, withClientCnf, type MysqlConn } from "./tools.ts";

export interface MysqlBackupOptions {
  conn: MysqlConn;
  /** the server's datadir (mariadb-backup copies its files) */
  datadir: string;
  target: string;
  id: string;
  /** the service name, "mysql" */
  name: string;
  node: string;
  storedOn: string;
  now: () => number;
  tool?: string;
  timeoutMs?: number;
  /** extra mariadb-backup --backup options (tests: --throttle) */
  extra?: string[];
  /** build on this backup (chain.ts incrementalParent): its id, checkpoint LSN, and this one's depth */
  parent?: { id: string; toLsn: number; depth: number } | null;
}

/** The datadir's identity: its system tablespace's inode and birth time (an LSN is meaningful only there). */
export async function datadirIdentity(datadir: string): Promise<string> {
  const s = await stat(join(datadir, "ibdata1"), { bigint: true });
  return `ibdata1:${s.ino}:${s.birthtimeNs || s.ctimeNs}`;
}

/** xtrabackup_checkpoints' "key = value" lines. */
export function parseCheckpoints(text: string): { type: string; fromLsn: number; toLsn: number } | null {
  const kv = new Map(text.split("\n").map((l) => l.split("=").map((x) => x.trim()) as [string, string]).filter((x) => x.length === 2));
  const n = (k: string) => (/^\d+$/.test(kv.get(k) ?? "") ? Number(kv.get(k)) : null);
  const type = kv.get("backup_type"), from = n("from_lsn"), to = n("to_lsn");
  return type && from !== null && to !== null && Number.isSafeInteger(to) ? { type, fromLsn: from, toLsn: to } : null;
}

/** "bin.000002\t345\t0-1-42" -> its parts; null when the file says something else. */
export function parseBinlogInfo(text: string): { file: string; pos: number; gtid: string } | null {
  const f = text.trim().split("\t");
  if (f.length < 2 || !f[0] || !/^\d+$/.test(f[1] ?? "")) return null;
  const gtid = (f[2] ?? "").trim();
  if (gtid && !/^\d+-\d+-\d+(,\d+-\d+-\d+)*$/.test(gtid)) return null;
  return { file: f[0], pos: Number(f[1]), gtid };
}

export async function takeMysqlBackup(o: MysqlBackupOptions): Promise<Manifest> {
  const tool = o.tool ?? "mariadb-backup";
  const tmp = tmpDir(o.target, "mysql", o.id);
  const startedAt = new Date(o.now()).toISOString();
  try {
    await mkdir(tmp, { recursive: true });
    const data = join(tmp, "data");
    const source = await datadirIdentity(o.datadir);
    const inc = o.parent ? [`--incremental-lsn=${o.parent.toLsn}`] : [];
    await withClientCnf(o.conn.password, async (cnf) => {
      await run(tool, [`--defaults-extra-file=${cnf}`, "--backup", `--target-dir=${data}`, `--datadir=${o.datadir}`, ...inc, ...connArgs(o.conn), ...(o.extra ?? [])], { timeoutMs: o.timeoutMs });
    });
    const cp = parseCheckpoints(await readFile(join(data, "xtrabackup_checkpoints"), "utf8"));
    if (!cp) throw new Error("xtrabackup_checkpoints: no backup type and LSNs in it");
    if (o.parent && (cp.type !== "incremental" || cp.fromLsn !== o.parent.toLsn)) throw new Error(`asked for an incremental from LSN ${o.parent.toLsn}, mariadb-backup made a ${cp.type} from ${cp.fromLsn}`);
    if (!o.parent) await run(tool, ["--prepare", `--target-dir=${data}`], { timeoutMs: o.timeoutMs });
    // 10.11 writes xtrabackup_binlog_info (later versions mariadb_backup_binlog_info)
    const infoText = await readFile(join(data, "mariadb_backup_binlog_info"), "utf8").catch(() => readFile(join(data, "xtrabackup_binlog_info"), "utf8"));
    const info = parseBinlogInfo(infoText);
    if (!info) throw new Error("xtrabackup_binlog_info: no binlog position in it (is log-bin on?)");
    const files = await writeSums(tmp);
    const m: Manifest = {
      id: o.id, kind: "mysql", name: o.name, node: o.node, storedOn: o.storedOn, startedAt,
      finishedAt: new Date(o.now()).toISOString(), bytes: await dirBytes(tmp), parent: o.parent?.id ?? null, state: "complete",
      detail: {
        gtid: info.gtid, binlogFile: info.file, binlogPos: info.pos, prepared: !o.parent, files,
        source, fromLsn: cp.fromLsn, toLsn: cp.toLsn, depth: o.parent?.depth ?? 0, incremental: !!o.parent,
      },
    };
    await writeManifest(tmp, m);
    await finalize(o.target, "mysql", o.id);
    return m;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}
