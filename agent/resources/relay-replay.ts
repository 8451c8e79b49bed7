// What a MariaDB replica stopped whole still holds in its relay log, replayed before anything can
// discard it (issue 15 item 3, the cold start). A replica whose mysqld restarted (skip-slave-start)
// has both replication threads stopped, and with GTID positioning MariaDB purges the relay log at
// the next START SLAVE or CHANGE MASTER, fetching again from the source at gtid_slave_pos. When
// the room lost power the source may never come back: a transaction the replica received and
// acknowledged (semi-sync AFTER_SYNC) but had not applied would be gone with the relay log. The
// server's own tools replay it, as a point-in-time recovery does: mariadb-binlog reads the relay
// log files from the given GTID position on (what the replica executed is skipped; the GTIDs of
// what follows are kept), and the mariadb client applies its output. A group left open at the end
// of the relay log (the source died while sending it) ends in mariadb-binlog's own ROLLBACK: it was
// never acknowledged. gtid_strict_mode on the server refuses a GTID applied twice.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";

export interface ReplayTarget {
  host?: string;
  port?: number;
  socketPath?: string;
  user: string;
  password: string;
}

export interface ReplayTools {
  /** default "mariadb-binlog" */
  binlog?: string;
  /** default "mariadb" */
  client?: string;
  /** default 60000 */
  timeoutMs?: number;
  /** more mariadb-binlog options (a point-in-time restore's --stop-position) */
  binlogArgs?: string[];
}

/** The relay log files from `current` on, in the order of the index file (paths relative to the
 *  datadir as the server writes them, "./name-relay-bin.000002"). Throws when `current` is not
 *  listed: the index and the server's position disagree, and nothing is replayed. */
export function relayFilesFrom(index: string, datadir: string, current: string): string[] {
  const all = index.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => (isAbsolute(l) ? l : join(datadir, l)));
  const base = (p: string) => p.slice(p.lastIndexOf("/") + 1);
  const at = all.findIndex((f) => base(f) === base(current));
  if (at < 0) throw new Error(`relay log ${current} is not in the relay log index (${all.map(base).join(", ") || "empty"})`);
  return all.slice(at);
}

/** mariadb-binlog's start position: one GTID per domain (the last executed in each). */
export function startPosition(executed: string): string {
  const byDomain = new Map<string, string>();
  for (const g of executed.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(g);
    if (!m) throw new Error(`not a MariaDB GTID: "${g}"`);
    const prev = byDomain.get(m[1]!);
    if (!prev || Number(prev.split("-")[2]) < Number(m[3])) byDomain.set(m[1]!, g);
  }
  return [...byDomain.values()].join(",");
}

/** Pipes `mariadb-binlog --start-position=POS FILES` into the mariadb client. The password goes
 *  to the client in an option file (mode 0600 in a private directory, removed after), never on a
 *  command line. Throws with both tools' stderr when either fails or the deadline passes (both are
 *  killed then). */
export async function replayRelayLog(files: string[], executed: string, to: ReplayTarget, tools: ReplayTools = {}): Promise<void> {
  if (!files.length) return;
  const dir = await mkdtemp(join(tmpdir(), "bollard-replay-"));
  try {
    const cnf = join(dir, "client.cnf");
    await writeFile(cnf, `[client]\npassword="${to.password.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"\n`, { mode: 0o600 });
    await pipe(files, executed, to, tools, cnf);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function pipe(files: string[], executed: string, to: ReplayTarget, tools: ReplayTools, cnf: string): Promise<void> {
  // --skip-gtid-strict-mode: in its default strict mode mariadb-binlog (10.8+) fails with "Binary
  // logs never reached expected GTID state of X" when nothing in the files comes after the start
  // position X, which is the usual case (a caught-up replica killed and restarted: bench-web's
  // lab kill kept it out for good, retrying every 250 ms). The start position still filters, and
  // the server's own gtid_strict_mode refuses a GTID applied twice.
  const binlogArgs = ["--skip-gtid-strict-mode", executed ? `--start-position=${startPosition(executed)}` : "", ...(tools.binlogArgs ?? []), ...files].filter(Boolean);
  const where = to.socketPath ? [`--socket=${to.socketPath}`] : [`--host=${to.host ?? "127.0.0.1"}`, `--port=${to.port ?? 3306}`, "--protocol=TCP"];
  const clientArgs = [`--defaults-extra-file=${cnf}`, ...where, `--user=${to.user}`, "--batch", "--binary-mode"];
  const reader = spawn(tools.binlog ?? "mariadb-binlog", binlogArgs, { stdio: ["ignore", "pipe", "pipe"] });
  const writer = spawn(tools.client ?? "mariadb", clientArgs, { stdio: ["pipe", "ignore", "pipe"] });
  const errs = { reader: "", writer: "" };
  reader.stderr!.on("data", (d) => { errs.reader += d; });
  writer.stderr!.on("data", (d) => { errs.writer += d; });
  writer.stdin!.on("error", () => undefined);
  reader.stdout!.pipe(writer.stdin!);
  const exit = (p: ReturnType<typeof spawn>) => new Promise<number | string>((r) => {
    p.once("error", (e) => r(e.message));
    p.once("close", (code, sig) => r(code ?? `signal ${sig}`));
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((r) => { timer = setTimeout(() => r("timeout"), tools.timeoutMs ?? 60_000); });
  const done = Promise.all([exit(reader), exit(writer)]);
  const res = await Promise.race([done, deadline]);
  clearTimeout(timer);
  if (res === "timeout") {
    reader.kill("SIGKILL");
    writer.kill("SIGKILL");
    await done;
    throw new Error(`relay log replay not done in ${tools.timeoutMs ?? 60_000} ms`);
  }
  const [rc, wc] = res;
  if (rc !== 0 || wc !== 0) {
    const tail = (s: string) => s.trim().split("\n").slice(-3).join(" / ");
    throw new Error(`relay log replay failed: mariadb-binlog ${rc}${errs.reader ? ` (${tail(errs.reader)})` : ""}, mariadb ${wc}${errs.writer ? ` (${tail(errs.writer)})` : ""}`);
  }
}

/** Reads the relay log index file. */
export function readIndex(path: string): Promise<string> {
  return readFile(path, "utf8");
}
