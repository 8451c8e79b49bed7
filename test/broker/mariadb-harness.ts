// Real MariaDB 10.11 servers for tests (STYLE: "what the lab can run for real is tested for
// real"). Server i (1-based) listens on loopback alias 127.0.2.<i> (all of 127/8 is loopback
// on Linux), on a free port, with its own datadir, socket and error log in one temp dir. The
// settings are LAB-NOTES' (server-id, log-bin, log-slave-updates, ROW, sync_binlog=1,
// gtid_strict_mode=1, skip-name-resolve). Every process is started and killed by its PID.
//
//   const h = await startMariadb({ nodes: 3 });    // h.servers[0].host / .port, h.admin
//   await h.kill9(1); await h.restart(1);           // crash and crash recovery
//   await h.stop();                                 // kills all, removes the temp dir
//
// Start-up is one mariadb-install-db into a template datadir, copied per server (the datadir
// holds nothing per-server), then the servers start in parallel.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface MariadbHarnessOptions {
  nodes?: number;
  mariadbd?: string;
  installDb?: string;
  client?: string;
  /** deadline for a server to accept connections (crash recovery included); default 15000 ms */
  readyTimeoutMs?: number;
  /** a datadir installed once and copied by every harness given it; default: install one */
  template?: MariadbTemplate;
}

/** A fresh datadir from mariadb-install-db (nothing in it is per server: no server-id, no
 *  binlog), to copy. */
export class MariadbTemplate {
  private constructor(readonly dir: string, readonly installMs: number) {}

  get datadir(): string {
    return join(this.dir, "data");
  }

  /** Installs into a new temp dir under `parent` (default: the system temp dir). */
  static async create(parent = tmpdir(), installDb = "mariadb-install-db"): Promise<MariadbTemplate> {
    const t0 = performance.now();
    const dir = mkdtempSync(join(parent, "bollard-mariadb-template-"));
    try {
      writeFileSync(join(dir, "my.cnf"), `[mariadbd]\ndatadir=${join(dir, "data")}\nsocket=${join(dir, "sock")}\nuser=root\n${SIZES}`);
      await run(installDb, [`--defaults-file=${join(dir, "my.cnf")}`, "--auth-root-authentication-method=socket", "--skip-test-db"]);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    return new MariadbTemplate(dir, performance.now() - t0);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// small and quick; must be the same at install and at every start
const SIZES = "innodb_buffer_pool_size=32M\ninnodb_log_file_size=8M\n";

export interface Server {
  /** 1-based */
  index: number;
  host: string;
  port: number;
  /** server-id, = index */
  serverId: number;
  dir: string;
  socket: string;
  pid: number | null;
}

/** True while a process with this PID exists (a reaped child is gone). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function myCnf(s: Server): string {
  return [
    "[mariadbd]",
    `datadir=${join(s.dir, "data")}`,
    `socket=${s.socket}`,
    `pid-file=${join(s.dir, "mariadbd.pid")}`,
    `log-error=${join(s.dir, "error.log")}`,
    `bind-address=${s.host}`,
    `port=${s.port}`,
    "user=root",
    `server-id=${s.serverId}`,
    `log-bin=${join(s.dir, "data", "bin")}`,
    "log-slave-updates=1",
    "binlog-format=ROW",
    "sync_binlog=1",
    "gtid_strict_mode=1",
    "skip-name-resolve",
    // small and quick; innodb_flush_log_at_trx_commit stays 1 (durable commits, honest timings)
    SIZES.trim(),
    "skip-host-cache",
    "max_connections=50",
    "",
  ].join("\n");
}

export class MariadbHarness {
  readonly servers: Server[] = [];
  /** TCP admin account from '127.%' on every server (created with sql_log_bin=0) */
  readonly admin = { user: "bollard", password: randomBytes(12).toString("hex") };
  /** how long start() took, ms, and its phases */
  startMs = 0;
  phases = { installMs: 0, copyMs: 0, serversMs: 0 };
  private readonly opts: Required<Omit<MariadbHarnessOptions, "template">> & { template: MariadbTemplate | null };
  private readonly procs = new Map<number, ChildProcess>();
  private readonly started: number[] = [];
  private root: string | null = null;
  private readonly onExit = () => {
    for (const p of this.procs.values()) if (p.pid) try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
    if (this.root) rmSync(this.root, { recursive: true, force: true });
  };

  constructor(opts: MariadbHarnessOptions = {}) {
    this.opts = {
      nodes: opts.nodes ?? 3,
      mariadbd: opts.mariadbd ?? "/usr/sbin/mariadbd",
      installDb: opts.installDb ?? "mariadb-install-db",
      client: opts.client ?? "mariadb",
      readyTimeoutMs: opts.readyTimeoutMs ?? 15000,
      template: opts.template ?? null,
    };
  }

  async start(): Promise<this> {
    if (this.root) throw new Error("harness already started");
    const t0 = performance.now();
    this.root = mkdtempSync(join(tmpdir(), "bollard-mariadb-"));
    process.on("exit", this.onExit); // a crashed test still leaves no server behind
    try {
      // a template datadir shared by several harnesses saves one install each (~1-3 s)
      const own = this.opts.template ? null : await MariadbTemplate.create(this.root, this.opts.installDb);
      const tpl = this.opts.template ?? own!;
      this.phases.installMs = performance.now() - t0;
      for (let i = 1; i <= this.opts.nodes; i++) {
        const dir = join(this.root, `node${i}`);
        mkdirSync(dir);
        cpSync(tpl.datadir, join(dir, "data"), { recursive: true });
        const host = `127.0.2.${i}`;
        this.servers.push({ index: i, host, port: 0, serverId: i, dir, socket: join(dir, "sock"), pid: null });
      }
      own?.remove();
      this.phases.copyMs = performance.now() - t0 - this.phases.installMs;
      // allSettled: no server may still be starting when stop() below removes the dirs
      const results = await Promise.allSettled(this.servers.map((s) => this.firstStart(s)));
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    } catch (e) {
      await this.stop().catch((e2: Error) => { (e as Error).message += ` (and on cleanup: ${e2.message})`; });
      throw e;
    }
    this.startMs = performance.now() - t0;
    this.phases.serversMs = this.startMs - this.phases.installMs - this.phases.copyMs;
    return this;
  }

  server(i: number): Server {
    const s = this.servers[i - 1];
    if (!s) throw new Error(`no server ${i} (1..${this.servers.length})`);
    return s;
  }

  isRunning(i: number): boolean {
    return this.procs.has(i);
  }

  /** Every PID this harness has started, running or not. */
  pids(): number[] {
    return [...this.started];
  }

  errorLog(i: number): string {
    try {
      return readFileSync(join(this.server(i).dir, "error.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** SQL as root over the server's private socket (stdin, so no secret is on a command line). */
  sql(i: number, statements: string): Promise<string> {
    return run(this.opts.client, [`--socket=${this.server(i).socket}`, "-N", "-B"], statements);
  }

  /** Starts server i (again, same address, port and datadir); resolves when it takes
   *  connections. `extra` are mariadbd options for this start only (e.g. --read-only=1).
   *  Returns the ms until ready (crash recovery included). */
  async restart(i: number, extra: string[] = []): Promise<number> {
    const s = this.server(i);
    if (this.procs.has(i)) throw new Error(`server ${i} is running`);
    const t0 = performance.now();
    const child = spawn(this.opts.mariadbd, [`--defaults-file=${join(s.dir, "my.cnf")}`, ...extra], { stdio: "ignore" });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", reject);
    });
    this.started.push(child.pid!);
    this.procs.set(i, child);
    s.pid = child.pid!;
    exited.then(() => { if (this.procs.get(i) === child) { this.procs.delete(i); s.pid = null; } });
    const deadline = t0 + this.opts.readyTimeoutMs;
    // TCP listens a moment before the unix socket exists: wait for both
    while (!(await canConnect({ host: s.host, port: s.port })) || !(await canConnect({ path: s.socket }))) {
      const dead = await Promise.race([exited.then(() => true), sleep(10).then(() => false)]);
      if (dead || performance.now() > deadline) {
        await this.kill9(i);
        throw new Error(`mariadbd ${i} on ${s.host}:${s.port} ${dead ? "exited" : "not ready in time"}: ${this.errorLog(i).slice(-800)}`);
      }
    }
    return performance.now() - t0;
  }

  /** SIGKILL by PID; resolves once the process is gone. */
  async kill9(i: number): Promise<void> {
    const child = this.procs.get(i);
    if (!child) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    this.procs.delete(i);
    this.server(i).pid = null;
  }

  /** Kills every server by PID, removes the temp dir. Idempotent. Throws if a PID survived. */
  async stop(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((i) => this.kill9(i)));
    process.off("exit", this.onExit);
    if (this.root) rmSync(this.root, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    this.root = null;
    const alive = this.started.filter(pidAlive);
    if (alive.length) throw new Error(`mariadbd PIDs still alive after stop: ${alive.join(", ")}`);
  }

  private async firstStart(s: Server): Promise<void> {
    // a free port can be taken between our probe and mariadbd's bind: try a few
    for (let attempt = 1; ; attempt++) {
      s.port = await freePort(s.host);
      writeFileSync(join(s.dir, "my.cnf"), myCnf(s));
      try {
        await this.restart(s.index);
        break;
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
    // Not binlogged: a replica's own GTIDs would make its binlog diverge from the primary's.
    const { user, password } = this.admin;
    await this.sql(s.index, [
      "SET sql_log_bin = 0;",
      `CREATE USER '${user}'@'127.%' IDENTIFIED BY '${password}';`,
      `GRANT ALL PRIVILEGES ON *.* TO '${user}'@'127.%' WITH GRANT OPTION;`,
    ].join("\n"));
  }
}

export function startMariadb(opts: MariadbHarnessOptions = {}): Promise<MariadbHarness> {
  return new MariadbHarness(opts).start();
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 30000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${err.message} ${stderr.slice(-800)}`));
      else resolve(stdout);
    });
    child.stdin?.end(input ?? "");
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(to: { host: string; port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(to);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(500, () => done(false));
  });
}
