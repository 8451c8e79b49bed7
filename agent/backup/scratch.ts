// A database server started beside the live cluster from a backup (issue 23 items 3, 4, 6): a
// MariaDB on a copied datadir, or a redis-server on a copied dump, with its own directory,
// address and port, started and stopped by its PID. A restore for an operator leaves it running
// (detached) and says how to connect and how to stop it; a verification stops it and removes it.
import { spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";

export interface ScratchSpec {
  /** the instance's own directory (datadir or dump inside) */
  dir: string;
  host: string;
  port: number;
  /** server-id of the restored MariaDB: not one of the cluster's */
  serverId?: number;
  /** keep running after this process exits (a restore for an operator) */
  detached?: boolean;
  binary?: string;
  readyTimeoutMs?: number;
}

export interface Scratch {
  kind: "mysql" | "redis";
  dir: string;
  host: string;
  port: number;
  socket: string | null;
  pid: number;
}

export function mariadbCnf(s: ScratchSpec): string {
  return [
    "[mariadbd]",
    `datadir=${join(s.dir, "data")}`,
    `socket=${join(s.dir, "mysqld.sock")}`,
    `pid-file=${join(s.dir, "mariadbd.pid")}`,
    `log-error=${join(s.dir, "error.log")}`,
    `bind-address=${s.host}`,
    `port=${s.port}`,
    "user=root",
    `server-id=${s.serverId ?? 4242}`,
    // its own binlog, so the restored GTID position can be read (@@gtid_binlog_pos) and the
    // replayed transactions keep their GTIDs
    `log-bin=${join(s.dir, "data", "restored-bin")}`,
    "binlog-format=ROW",
    "gtid_strict_mode=1",
    "skip-name-resolve",
    "skip-slave-start",
    "innodb_buffer_pool_size=64M",
    "max_connections=30",
    "",
  ].join("\n");
}

/** Starts mariadbd on `<dir>/data` (already in place); resolves when it takes connections. */
export async function startScratchMariadb(s: ScratchSpec): Promise<Scratch> {
  await writeFile(join(s.dir, "my.cnf"), mariadbCnf(s));
  const socket = join(s.dir, "mysqld.sock");
  const pid = await startAndWait(s.binary ?? "/usr/sbin/mariadbd", [`--defaults-file=${join(s.dir, "my.cnf")}`], s, socket, () => readFile(join(s.dir, "error.log"), "utf8").catch(() => ""));
  return { kind: "mysql", dir: s.dir, host: s.host, port: s.port, socket, pid };
}

/** Starts redis-server on `<dir>/dump.rdb`; resolves when it answers. */
export async function startScratchRedis(s: ScratchSpec): Promise<Scratch> {
  await mkdir(s.dir, { recursive: true });
  const conf = [`bind ${s.host}`, `port ${s.port}`, "protected-mode no", "daemonize no", `dir ${s.dir}`, "dbfilename dump.rdb", 'save ""', "appendonly no", `logfile ${join(s.dir, "redis.log")}`, ""].join("\n");
  await writeFile(join(s.dir, "redis.conf"), conf);
  const pid = await startAndWait(s.binary ?? "redis-server", [join(s.dir, "redis.conf")], s, null, () => readFile(join(s.dir, "redis.log"), "utf8").catch(() => ""));
  return { kind: "redis", dir: s.dir, host: s.host, port: s.port, socket: null, pid };
}

async function startAndWait(bin: string, args: string[], s: ScratchSpec, socket: string | null, log: () => Promise<string>): Promise<number> {
  const child = spawn(bin, args, { stdio: "ignore", detached: !!s.detached });
  await new Promise<void>((resolve, reject) => { child.once("spawn", () => resolve()); child.once("error", reject); });
  let dead = false;
  child.once("exit", () => { dead = true; });
  if (s.detached) child.unref();
  const deadline = Date.now() + (s.readyTimeoutMs ?? 60_000);
  while (!(await canConnect({ host: s.host, port: s.port })) || (socket && !(await canConnect({ path: socket })))) {
    if (dead || Date.now() > deadline) {
      if (!dead) child.kill("SIGKILL");
      throw new Error(`${bin} on ${s.host}:${s.port} ${dead ? "exited" : "not ready in time"}: ${(await log()).trim().split("\n").slice(-4).join(" / ")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return child.pid!;
}

/** SIGTERM by PID, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopScratch(x: Pick<Scratch, "pid">, graceMs = 10_000): Promise<void> {
  const alive = () => { try { process.kill(x.pid, 0); return true; } catch { return false; } };
  if (!alive()) return;
  try { process.kill(x.pid, "SIGTERM"); } catch { return; }
  const until = Date.now() + graceMs;
  while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  if (alive()) try { process.kill(x.pid, "SIGKILL"); } catch { /* gone */ }
  while (alive()) await new Promise((r) => setTimeout(r, 20));
}

function canConnect(to: { host: string; port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(to);
    const done = (ok: boolean) => { c.destroy(); resolve(ok); };
    c.once("connect", () => done(true));
    c.once("error", () => done(false));
    c.setTimeout(500, () => done(false));
  });
}
