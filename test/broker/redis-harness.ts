// Real redis-server instances for tests (STYLE: "what the lab can run for real is tested for
// real"). Instance i (1-based) is node<i>'s Redis on loopback alias 127.0.3.<i> port 6379
// (all of 127/8 is loopback on Linux), in its own temp dir, with the settings LAB-NOTES
// "Redis 7.0" measured: no persistence, diskless sync without delay, replica-announce-ip.
// Every process is started and killed by its PID; stop() leaves no process and no temp dir.
//
//   const h = await new RedisHarness({ nodes: 3 }).start();
//   await h.kill9(1); await h.restart(1);   // same address, port and config, empty dataset
//   await h.stop();
//
// LinkProxy is a TCP relay that can be cut: a partition on loopback without iptables.
// While cut it drops bytes both ways and keeps both connections open, as a real
// partition does (nobody sees a FIN or a RST), so a master stops getting REPLCONF ACKs.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RedisHarnessOptions {
  /** number of instances, node1..nodeN on 127.0.3.1..N; default 3 */
  nodes?: number;
  /** requirepass and masterauth of every instance; default none */
  password?: string;
  redisServer?: string;
  /** deadline for an instance to answer PING; default 5000 ms */
  readyTimeoutMs?: number;
  /** lines appended to every instance's redis.conf (a later line wins) */
  conf?: string[];
}

export interface RedisInstance {
  index: number;
  name: string;
  host: string;
  port: number;
  dir: string;
}

/** redis.conf of one instance (https://redis.io/docs/management/config-file/). */
export function redisConf(r: RedisInstance, password?: string): string {
  return [
    `bind ${r.host}`,
    `port ${r.port}`,
    "protected-mode no",
    "daemonize no",
    `pidfile ${join(r.dir, "redis.pid")}`,
    `logfile ${join(r.dir, "redis.log")}`,
    `dir ${r.dir}`,
    'save ""',
    "appendonly no",
    "repl-diskless-sync yes",
    "repl-diskless-sync-delay 0",
    // Without it a replica is listed by the address it connects from: 127.0.0.1 here.
    `replica-announce-ip ${r.host}`,
    ...(password ? [`requirepass ${password}`, `masterauth ${password}`] : []),
    "",
  ].join("\n");
}

export class RedisHarness {
  readonly instances: RedisInstance[] = [];
  private readonly opts: Required<Omit<RedisHarnessOptions, "password" | "conf">> & { password?: string; conf?: string[] };
  private readonly procs = new Map<number, ChildProcess>();
  private readonly started: number[] = [];
  private root: string | null = null;
  private readonly onExit = () => {
    for (const p of this.procs.values()) if (p.pid) try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
    if (this.root) rmSync(this.root, { recursive: true, force: true });
  };

  constructor(opts: RedisHarnessOptions = {}) {
    this.opts = { nodes: opts.nodes ?? 3, password: opts.password, conf: opts.conf, redisServer: opts.redisServer ?? "redis-server", readyTimeoutMs: opts.readyTimeoutMs ?? 5000 };
  }

  async start(): Promise<this> {
    if (this.root) throw new Error("redis harness already started");
    this.root = mkdtempSync(join(tmpdir(), "bollard-redis-"));
    process.on("exit", this.onExit); // a crashed test still leaves no redis-server behind
    try {
      for (let i = 1; i <= this.opts.nodes; i++) {
        const r: RedisInstance = { index: i, name: `node${i}`, host: `127.0.3.${i}`, port: 6379, dir: mkdtempSync(join(this.root, `node${i}-`)) };
        if (await answersPing(r.host, r.port)) throw new Error(`something already listens on ${r.host}:${r.port}: a leftover redis-server?`);
        writeFileSync(join(r.dir, "redis.conf"), redisConf(r, this.opts.password) + (this.opts.conf ?? []).map((l) => `${l}\n`).join(""));
        this.instances.push(r);
        await this.startNode(i);
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    return this;
  }

  node(i: number): RedisInstance {
    const r = this.instances[i - 1];
    if (!r) throw new Error(`no redis instance ${i} (1..${this.instances.length})`);
    return r;
  }

  pid(i: number): number | null {
    return this.procs.get(i)?.pid ?? null;
  }

  /** Every PID this harness started, running or not. */
  pids(): number[] {
    return [...this.started];
  }

  log(i: number): string {
    try {
      return readFileSync(join(this.node(i).dir, "redis.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** Starts instance i on its address; resolves once it answers PING. */
  async startNode(i: number): Promise<void> {
    const r = this.node(i);
    if (this.procs.has(i)) return;
    const child = spawn(this.opts.redisServer, [join(r.dir, "redis.conf")], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    await new Promise<void>((res, rej) => { child.once("spawn", res); child.once("error", rej); });
    this.started.push(child.pid!);
    this.procs.set(i, child);
    exited.then(() => { if (this.procs.get(i) === child) this.procs.delete(i); });
    const deadline = Date.now() + this.opts.readyTimeoutMs;
    while (!(await answersPing(r.host, r.port))) {
      const dead = await Promise.race([exited.then(() => true), sleep(20).then(() => false)]);
      if (dead || Date.now() > deadline) {
        await this.kill9(i);
        throw new Error(`redis-server ${r.name} on ${r.host}:${r.port} ${dead ? "exited" : "did not answer PING in time"}: ${stderr.trim()} ${this.log(i).slice(-500)}`);
      }
    }
  }

  /** kill -9 instance i; resolves once the process is gone. */
  async kill9(i: number): Promise<void> {
    await this.signal(i, "SIGKILL");
  }

  /** SIGTERM (SIGKILL after 3 s); resolves once the process is gone. */
  async stopNode(i: number): Promise<void> {
    await this.signal(i, "SIGTERM");
  }

  /** Starts instance i again after kill9/stopNode (kills it first if it runs). */
  async restart(i: number): Promise<void> {
    await this.kill9(i);
    await this.startNode(i);
  }

  /** Stops every instance and removes the temp dirs. Idempotent. Throws if a PID survived. */
  async stop(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((i) => this.signal(i, "SIGTERM")));
    process.off("exit", this.onExit);
    if (this.root) rmSync(this.root, { recursive: true, force: true });
    this.root = null;
    const alive = this.started.filter(pidAlive);
    if (alive.length) throw new Error(`redis-server PIDs still alive after stop: ${alive.join(", ")}`);
  }

  private async signal(i: number, sig: "SIGTERM" | "SIGKILL"): Promise<void> {
    const child = this.procs.get(i);
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill(sig);
      if (!(await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]))) {
        child.kill("SIGKILL");
        await exited;
      }
    }
    this.procs.delete(i);
  }
}

/** A cuttable TCP relay from host:<ephemeral port> to target (see the header). */
export class LinkProxy {
  port = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private cutNow = false;

  constructor(readonly host: string, readonly target: { host: string; port: number }) {}

  async start(): Promise<this> {
    const server = createServer((down) => {
      const up = connect(this.target);
      for (const [from, to] of [[down, up], [up, down]] as const) {
        this.sockets.add(from);
        from.on("data", (d: Buffer) => { if (!this.cutNow) to.write(d); });
        from.on("error", () => {});
        // A close crosses the link only while it is not cut.
        from.on("close", () => { this.sockets.delete(from); if (!this.cutNow) to.destroy(); });
      }
    });
    this.server = server;
    await new Promise<void>((res, rej) => { server.once("error", rej); server.listen(0, this.host, () => res()); });
    const a = server.address();
    this.port = typeof a === "object" && a ? a.port : 0;
    return this;
  }

  cut(): void {
    this.cutNow = true;
  }

  heal(): void {
    this.cutNow = false;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True when host:port answers PING with +PONG, or with -NOAUTH (up, password set). */
export function answersPing(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let buf = "";
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.once("connect", () => s.write("PING\r\n"));
    s.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG") || buf.startsWith("-NOAUTH"));
    });
    s.once("error", () => done(false));
    s.setTimeout(500, () => done(false));
  });
}
