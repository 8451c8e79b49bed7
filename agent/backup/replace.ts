// Making a restored point the cluster's data (`bollard restore mysql --replace`, issue 23 item 3,
// docs/backup.md): the restored server's user schemas are dumped (mariadb-dump) and loaded into
// the cluster's PRIMARY, which binlogs them: replication carries them to every replica, and the
// GTID history and the binlog archive go on without a gap. A physical datadir swap would need a
// re-clone of every replica (bollard has none) and would restart the GTID sequence (a gap the
// archive could not cross). The load runs as the HA user (ALL PRIVILEGES: READ ONLY ADMIN in
// MariaDB 10.11, so it writes while read_only=1 keeps every client out); the primary's own user
// schemas are dropped first in the same session. The CLI flow (stop writes, keep the old data,
// load, wait for the replicas, resume) is agent/cli/restore-replace-cmd.ts.
import { spawn } from "node:child_process";
import { connArgs, sql, withClientCnf, type MysqlConn } from "./tools.ts";

/** Schemas that are the server's or bollard's own: never dumped, never dropped. `bollard` holds
 *  the data checks (resources/mysql-verify.ts), `bollard_site` the site heartbeat (site-mysql.ts). */
export const KEEP_SCHEMAS = ["mysql", "sys", "information_schema", "performance_schema", "bollard", "bollard_site"];

/** The user schemas of a server (what a replace drops and loads), sorted. */
export async function userSchemas(c: MysqlConn): Promise<string[]> {
  const out = await sql(c, "SELECT schema_name FROM information_schema.schemata ORDER BY 1;");
  return out.split("\n").map((s) => s.trim()).filter((s) => s && !KEEP_SCHEMAS.includes(s.toLowerCase()));
}

const ident = (s: string) => "`" + s.replace(/`/g, "``") + "`";

/** The statements that drop the primary's user schemas before the load (pure; tested). */
export function dropStatements(schemas: string[]): string {
  return schemas.filter((s) => !KEEP_SCHEMAS.includes(s.toLowerCase())).map((s) => `DROP DATABASE IF EXISTS ${ident(s)};\n`).join("");
}

/** Where a server is: read_only, @@gtid_binlog_pos, @@gtid_current_pos. */
export async function position(c: MysqlConn): Promise<{ readOnly: boolean; binlogPos: string; currentPos: string }> {
  const [ro = "", binlogPos = "", currentPos = ""] = (await sql(c, "SELECT @@read_only, @@gtid_binlog_pos, @@gtid_current_pos;", "mariadb", 10_000)).trim().split("\t");
  return { readOnly: ro === "1", binlogPos, currentPos };
}

/** Whether the user can write while read_only=1 (READ ONLY ADMIN, or ALL PRIVILEGES ON *.*). */
export async function canWriteReadOnly(c: MysqlConn): Promise<boolean> {
  const grants = await sql(c, "SHOW GRANTS;", "mariadb", 10_000);
  return /GRANT ALL PRIVILEGES ON \*\.\*|READ ONLY ADMIN/i.test(grants);
}

export interface LoadResult { dropped: string[]; loaded: string[]; bytes: number; ms: number }

/**
 * Drops `into`'s user schemas, then loads `from`'s (mariadb-dump --databases ... | mariadb), in
 * one client session on `into`, binlogged (replicas get it). The dump is consistent
 * (--single-transaction) with routines, events and triggers.
 */
export async function loadSchemas(from: MysqlConn, into: MysqlConn, timeoutMs = 3_600_000): Promise<LoadResult> {
  const t0 = performance.now();
  const dropped = await userSchemas(into);
  const loaded = await userSchemas(from);
  const drops = dropStatements(dropped);
  if (!loaded.length) {
    if (drops) await sql(into, drops, "mariadb", timeoutMs);
    return { dropped, loaded, bytes: 0, ms: performance.now() - t0 };
  }
  const bytes = await withClientCnf(from.password, (fromCnf) => withClientCnf(into.password, (intoCnf) => pipe(
    ["mariadb-dump", [`--defaults-extra-file=${fromCnf}`, ...connArgs(from), "--single-transaction", "--routines", "--events", "--triggers", "--hex-blob", "--add-drop-database", "--databases", ...loaded]],
    ["mariadb", [`--defaults-extra-file=${intoCnf}`, ...connArgs(into), "--binary-mode"]],
    // the session writes the binlog (replicas must get it); foreign keys are checked on the data
    // as it was, not on a half-loaded one
    `SET SESSION sql_log_bin = 1;\nSET FOREIGN_KEY_CHECKS = 0;\n${drops}`,
    timeoutMs,
  )));
  return { dropped, loaded, bytes, ms: performance.now() - t0 };
}

/** `a | b` with `prefix` written to b first; resolves with the bytes piped; rejects with the
 *  failing tool's last stderr lines. Both are killed by PID on failure or at the deadline. */
function pipe(a: [string, string[]], b: [string, string[]], prefix: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const pa = spawn(a[0], a[1], { stdio: ["ignore", "pipe", "pipe"] });
    const pb = spawn(b[0], b[1], { stdio: ["pipe", "ignore", "pipe"] });
    let ea = "", eb = "", bytes = 0, settled = false, left = 2;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) { pa.kill("SIGKILL"); pb.kill("SIGKILL"); reject(err); } else resolve(bytes);
    };
    const timer = setTimeout(() => finish(new Error(`${a[0]} | ${b[0]}: not done in ${timeoutMs} ms`)), timeoutMs);
    pa.stderr.on("data", (d) => { ea = (ea + d).slice(-8192); });
    pb.stderr.on("data", (d) => { eb = (eb + d).slice(-8192); });
    pb.stdin.on("error", () => undefined);
    pb.stdin.write(prefix);
    pa.stdout.on("data", (d: Buffer) => { bytes += d.length; if (!pb.stdin.write(d)) { pa.stdout.pause(); pb.stdin.once("drain", () => pa.stdout.resume()); } });
    pa.stdout.on("end", () => pb.stdin.end());
    const tail = (s: string) => s.trim().split("\n").slice(-3).join(" / ");
    const done = (name: string, code: number | null) => {
      if (code !== 0) return finish(new Error(name === a[0] ? `${a[0]} exited ${code}: ${tail(ea)}` : `${b[0]} (loading into the primary) exited ${code}: ${tail(eb)}`));
      if (--left === 0) finish(null);
    };
    pa.once("error", (e) => finish(new Error(`${a[0]}: ${e.message}`)));
    pb.once("error", (e) => finish(new Error(`${b[0]}: ${e.message}`)));
    pa.once("close", (code) => done(a[0], code));
    pb.once("close", (code) => done(b[0], code));
  });
}

/** Waits until `replica` has applied `pos` (MASTER_GTID_WAIT); returns its @@gtid_current_pos. */
export async function waitReplica(replica: MysqlConn, pos: string, timeoutS: number): Promise<string> {
  const clean = pos.replace(/[^0-9,-]/g, "");
  const r = (await sql(replica, `SELECT MASTER_GTID_WAIT('${clean}', ${Math.max(1, Math.round(timeoutS))});`, "mariadb", (timeoutS + 10) * 1000)).trim();
  if (r !== "0") throw new Error(`not at ${clean} within ${timeoutS} s (MASTER_GTID_WAIT said ${r || "nothing"})`);
  return (await position(replica)).currentPos;
}

/** CHECKSUM TABLE of every table of the user schemas: "db.t" -> checksum (the proof every node
 *  holds the same data, for the tests; a full read of every table, so not run while writes are
 *  stopped). */
export async function checksums(c: MysqlConn, timeoutMs = 600_000): Promise<Record<string, string>> {
  const schemas = await userSchemas(c);
  if (!schemas.length) return {};
  const list = (await sql(c, `SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN (${schemas.map((s) => `'${s.replace(/'/g, "''")}'`).join(",")}) ORDER BY 1;`)).trim().split("\n").filter(Boolean);
  if (!list.length) return {};
  const out: Record<string, string> = {};
  const rows = (await sql(c, `CHECKSUM TABLE ${list.map((t) => t.split(".").map(ident).join(".")).join(", ")};`, "mariadb", timeoutMs)).trim().split("\n");
  for (const r of rows) { const [t = "", v = ""] = r.split("\t"); out[t] = v; }
  return out;
}

