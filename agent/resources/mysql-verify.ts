// Nothing diverges silently (issue 22 item 5): after a failover, a switchover or a replica's
// rejoin, and then at a steady interval, the data on the primary and every replica is compared,
// table by table, without stopping writes. The method is pt-table-checksum's: the primary runs
//
//   SET SESSION binlog_format = 'STATEMENT';
//   REPLACE INTO bollard.checksums (db, tbl, run, cnt, crc)
//     SELECT 'db', 'tbl', RUN, COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', c1, ..., nulls))), 0) FROM db.tbl;
//
// written to the binlog as a statement, so each replica runs it again on its own data at the
// same point of the replication stream; the primary then writes its own results into
// master_cnt and master_crc (an UPDATE with the values, as a statement too: a row event would
// carry the whole row and overwrite the replica's own results), which reach each replica right
// after. A replica whose cnt/crc differ from master_cnt/master_crc holds different data:
// a CRITICAL alarm, and it is held out for re-cloning. COUNT(*) and BIT_XOR do not depend on
// the order rows are read in. NULLs are marked apart (CONCAT_WS skips them).
// Pure here: the statements and the reading of results; mysql.ts runs them.

export interface TableRef {
  db: string;
  tbl: string;
  columns: string[];
}

export interface Difference {
  db: string;
  tbl: string;
  run: number;
  /** this replica's count and checksum, and the primary's */
  cnt: number;
  crc: string;
  masterCnt: number;
  masterCrc: string;
}

/** System schemas and ours: never checked. */
export const SKIP_SCHEMAS = ["mysql", "information_schema", "performance_schema", "sys", "bollard"];

/** `name` as a quoted identifier. */
export const ident = (name: string) => "`" + name.replace(/`/g, "``") + "`";

export const CREATE = [
  "CREATE DATABASE IF NOT EXISTS bollard",
  "CREATE TABLE IF NOT EXISTS bollard.checksums (db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, run BIGINT UNSIGNED NOT NULL, " +
    "cnt BIGINT UNSIGNED NOT NULL, crc BIGINT UNSIGNED NOT NULL, master_cnt BIGINT UNSIGNED NULL, master_crc BIGINT UNSIGNED NULL, " +
    "ts TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), PRIMARY KEY (db, tbl, run)) ENGINE=InnoDB",
];

/** The tables to check and their columns, from information_schema (rows of TABLES joined to COLUMNS). */
export const LIST_TABLES =
  "SELECT c.TABLE_SCHEMA AS db, c.TABLE_NAME AS tbl, GROUP_CONCAT(c.COLUMN_NAME ORDER BY c.ORDINAL_POSITION SEPARATOR '\\n') AS cols " +
  "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME " +
  `WHERE t.TABLE_TYPE = 'BASE TABLE' AND t.ENGINE = 'InnoDB' AND c.TABLE_SCHEMA NOT IN (${SKIP_SCHEMAS.map((s) => `'${s}'`).join(", ")}) ` +
  "AND COALESCE(t.DATA_LENGTH, 0) <= ? GROUP BY c.TABLE_SCHEMA, c.TABLE_NAME ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME";

/** Rows of LIST_TABLES, validated (a server answer is input from outside). */
export function parseTables(rows: readonly Record<string, unknown>[]): TableRef[] {
  const out: TableRef[] = [];
  for (const r of rows) {
    if (typeof r.db !== "string" || typeof r.tbl !== "string" || typeof r.cols !== "string" || !r.cols) continue;
    out.push({ db: r.db, tbl: r.tbl, columns: r.cols.split("\n") });
  }
  return out;
}

/** The checksum statement of one table for run `run` (statement format: replicas recompute it). */
export function checksumSql(t: TableRef, run: number): string {
  const cols = t.columns.map(ident);
  const nulls = `CONCAT(${cols.map((c) => `ISNULL(${c})`).join(", ")})`;
  const lit = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  return `REPLACE INTO bollard.checksums (db, tbl, run, cnt, crc) SELECT ${lit(t.db)}, ${lit(t.tbl)}, ${Math.trunc(run)}, COUNT(*), ` +
    `COALESCE(BIT_XOR(CAST(CRC32(CONCAT_WS('#', ${cols.join(", ")}, ${nulls})) AS UNSIGNED)), 0) FROM ${ident(t.db)}.${ident(t.tbl)}`;
}

/** Differences of the latest run on a replica (rows whose master_* have arrived). */
export const DIFFERENCES =
  "SELECT db, tbl, run, cnt, crc, master_cnt, master_crc FROM bollard.checksums WHERE run = (SELECT MAX(run) FROM bollard.checksums WHERE master_cnt IS NOT NULL) " +
  "AND master_cnt IS NOT NULL AND (cnt <> master_cnt OR crc <> master_crc) ORDER BY db, tbl";

export function parseDifferences(rows: readonly Record<string, unknown>[]): Difference[] {
  return rows.filter((r) => typeof r.db === "string" && typeof r.tbl === "string").map((r) => ({
    db: String(r.db), tbl: String(r.tbl), run: Number(r.run), cnt: Number(r.cnt), crc: String(r.crc), masterCnt: Number(r.master_cnt), masterCrc: String(r.master_crc),
  }));
}

/** One line for an event and an alarm. */
export function describe(d: readonly Difference[]): string {
  const t = d.slice(0, 3).map((x) => `${x.db}.${x.tbl} (${x.cnt} rows here, ${x.masterCnt} on the primary${x.cnt === x.masterCnt ? ", checksums differ" : ""})`);
  return `${t.join("; ")}${d.length > 3 ? ` and ${d.length - 3} more` : ""} at check ${d[0]?.run ?? "?"}`;
}
