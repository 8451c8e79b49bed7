// The access portal driver: one nginx per node (DESIGN §1, §5; issue 4 item 3).
// apply() renders the include files (portal-render.ts), checks them with `nginx -t` in a
// staging copy, moves them into place atomically and reloads gracefully; the old workers
// close what they still hold after worker_shutdown_timeout, so clients of a demoted primary
// reconnect through the new route. nginx runs in the foreground of a detached child (no
// double fork, so it is reaped even where PID 1 does not reap) and is found again after an
// agent restart through its pid file. Every process is signalled by PID.
import { execFile, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from "node:fs";
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Logger } from "../env/env.ts";
import { atomicWrite } from "../env/store.ts";
import { killListener } from "./process.ts";
import { DriverError } from "./types.ts";
import {
  HTTP_FILE, STREAM_FILE, checkDesired, parseState, renderBase, renderHttp, renderStream,
  type BaseOptions, type PortalDesired, type RenderedState,
} from "./portal-render.ts";

export interface PortalDriverOptions {
  /** nginx prefix (-p): nginx.conf, stream.d/, http.d/, staging/, tmp/, error.log, nginx.pid */
  prefix: string;
  /** default <prefix>/nginx.conf */
  confPath?: string;
  /** default /usr/sbin/nginx */
  nginxBin?: string;
  /** default <prefix>/nginx.pid */
  pidFile?: string;
  log: Logger;
  /** streamModule, workerProcesses, workerShutdownTimeoutMs, workerConnections, user */
  base?: Partial<Pick<BaseOptions, "streamModule" | "workerProcesses" | "workerShutdownTimeoutMs" | "workerConnections" | "user">>;
  /** bound on `nginx -t`, start-up, reload and stop; default 5000 ms */
  timeoutMs?: number;
}

export interface ApplyResult {
  /** false when the rendered files were already in place (nothing checked or reloaded) */
  changed: boolean;
  /** whether nginx was reloaded (false when it is not running: the files wait for start()) */
  reloaded: boolean;
  renderMs: number;
  testMs: number;
  writeMs: number;
  /** HUP to the first new worker; 0 when not reloaded */
  reloadMs: number;
  totalMs: number;
}

export interface PortalStatus {
  running: boolean;
  pid: number | null;
  /** what the live files route, read back from them; null fields when no file is there yet */
  fenced: boolean | null;
  mysql: string | null;
  redis: string | null;
  services: Record<string, string[]>;
}

const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;
const sleep = (n: number) => new Promise<void>((r) => setTimeout(r, n));

export class PortalDriver {
  private readonly confPath: string;
  private readonly nginxBin: string;
  private readonly pidFile: string;
  private readonly errorLog: string;
  private readonly timeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: PortalDriverOptions) {
    this.confPath = o.confPath ?? join(o.prefix, "nginx.conf");
    this.nginxBin = o.nginxBin ?? "/usr/sbin/nginx";
    this.pidFile = o.pidFile ?? join(o.prefix, "nginx.pid");
    this.errorLog = join(o.prefix, "error.log");
    this.timeoutMs = o.timeoutMs ?? 5000;
  }

  /** Starts nginx unless it already runs; resolves once the master has bound its listeners. */
  start(): Promise<{ pid: number; started: boolean; ms: number }> {
    return this.serial(async () => {
      const t0 = performance.now();
      await this.prepare();
      const running = this.masterPid();
      if (running !== null) return { pid: running, started: false, ms: ms(t0) };
      await this.nginxTest(this.confPath);
      const outFile = join(this.o.prefix, "nginx.out");
      const outAt = existsSync(outFile) ? readFileSync(outFile).length : 0;
      const out = openSync(outFile, "a");
      const child = spawn(this.nginxBin, [...this.args(this.confPath), "-g", "daemon off;"], { detached: true, stdio: ["ignore", out, out] });
      closeSync(out);
      let exited: string | null = null;
      child.once("exit", (code, sig) => (exited = `exited (${sig ?? code})`));
      child.once("error", (e) => (exited = e.message));
      child.unref();
      // nginx writes its pid file after binding its listeners (ngx_create_pidfile after ngx_init_cycle)
      while (this.readPid() !== child.pid) {
        if (exited !== null) {
          const said = readFileSync(outFile).subarray(outAt).toString("utf8").trim().split("\n").slice(-3).join(" | ");
          throw new DriverError("portal", `nginx ${exited} at start: ${said || "no output (see " + this.errorLog + ")"}`);
        }
        if (performance.now() - t0 > this.timeoutMs) {
          if (child.pid) process.kill(child.pid, "SIGKILL");
          throw new DriverError("portal", `nginx did not write ${this.pidFile} within ${this.timeoutMs} ms`);
        }
        await sleep(5);
      }
      this.o.log.info("nginx started", { pid: child.pid, conf: this.confPath, ms: ms(t0) });
      return { pid: child.pid!, started: true, ms: ms(t0) };
    });
  }

  /**
   * Renders `d`, checks it with `nginx -t` (staged: the live files are untouched when it
   * fails), writes it atomically and reloads. Throws a DriverError quoting nginx on failure.
   */
  apply(d: PortalDesired): Promise<ApplyResult> {
    return this.serial(async () => {
      const t0 = performance.now();
      const errs = checkDesired(d);
      if (errs.length) throw new DriverError("portal", `desired state refused: ${errs.join("; ")}`);
      const files: [string, string][] = [[STREAM_FILE, renderStream(d)], [HTTP_FILE, renderHttp(d)]];
      const renderMs = ms(t0);
      await this.prepare();
      const old = await Promise.all(files.map(([f]) => readFile(join(this.o.prefix, f), "utf8").catch(() => null)));
      if (files.every(([, text], i) => old[i] === text))
        return { changed: false, reloaded: false, renderMs, testMs: 0, writeMs: 0, reloadMs: 0, totalMs: ms(t0) };

      const t1 = performance.now();
      if (this.masterPid() !== null) await checkNewListeners(files.map(([, t]) => t), old);
      await this.stage(files);
      await this.nginxTest(join(this.o.prefix, "staging", "nginx.conf"));
      const testMs = ms(t1);

      const t2 = performance.now();
      // derived state, re-rendered by every apply(): atomic (rename) but not fsynced, which
      // keeps ~20 ms of fsync off the failover path
      for (const [f, text] of files) atomicWrite(join(this.o.prefix, f), text, { durable: false, mode: 0o644 });
      const writeMs = ms(t2);

      let reloadMs = 0;
      const pid = this.masterPid();
      if (pid !== null) {
        try {
          reloadMs = await this.reload(pid);
        } catch (e) {
          // the master kept its old config: put the files that match it back
          for (const [i, [f]] of files.entries())
            if (old[i] !== null) atomicWrite(join(this.o.prefix, f), old[i]!, { durable: false, mode: 0o644 });
            else await rm(join(this.o.prefix, f), { force: true });
          throw e;
        }
      }
      const r = { changed: true, reloaded: pid !== null, renderMs, testMs, writeMs, reloadMs, totalMs: ms(t0) };
      this.o.log.info("portal applied", { fenced: d.fenced, mysql: d.mysql?.primary ?? null, redis: d.redis?.primary ?? null, ...r });
      return r;
    });
  }

  /** Stops nginx by its pid (SIGTERM, then SIGKILL to the master and its workers). */
  stop(): Promise<{ stopped: boolean; ms: number }> {
    return this.serial(async () => {
      const t0 = performance.now();
      const pid = this.masterPid();
      if (pid === null) return { stopped: false, ms: 0 };
      const workers = childrenOf(pid);
      process.kill(pid, "SIGTERM");
      while ([pid, ...workers].some(alive) && performance.now() - t0 < this.timeoutMs) await sleep(10);
      for (const p of [pid, ...workers].filter(alive)) {
        this.o.log.warn("nginx did not stop on SIGTERM: SIGKILL", { pid: p });
        process.kill(p, "SIGKILL");
      }
      this.o.log.info("nginx stopped", { pid, ms: ms(t0) });
      return { stopped: true, ms: ms(t0) };
    });
  }

  /**
   * A dead or hung nginx (issue 22 item 3): SIGKILL to the master and its workers (a stopped
   * process cannot act on SIGTERM), and to any nginx left listening on `ports` (the workers of a
   * master that died alone keep serving the old routes), then confirms they are gone. Returns
   * what was killed.
   */
  kill(ports: { addr: string; port: number }[]): Promise<string> {
    return this.serial(async () => {
      const killed: string[] = [];
      const pid = this.masterPid();
      if (pid !== null) {
        for (const p of [pid, ...childrenOf(pid)]) { try { process.kill(p, "SIGKILL"); killed.push(String(p)); } catch { /* gone */ } }
      }
      for (const { addr, port } of ports) {
        const r = await killListener(addr, port, ["nginx"], { timeoutMs: this.timeoutMs });
        if (!r.ok) throw new DriverError("portal", `nginx on ${addr}:${port}: ${r.proof}`);
        if (!/nothing listens/.test(r.proof)) killed.push(r.proof);
      }
      const t0 = performance.now();
      while (pid !== null && alive(pid) && performance.now() - t0 < this.timeoutMs) await sleep(5);
      this.o.log.warn("nginx killed", { killed });
      return killed.length ? `killed ${killed.join("; ")}` : "no nginx was running";
    });
  }

  status(): PortalStatus {
    const pid = this.masterPid();
    const read = (f: string) => {
      try {
        return parseState(readFileSync(join(this.o.prefix, f), "utf8"));
      } catch {
        return null;
      }
    };
    const s: Partial<RenderedState> = { ...read(STREAM_FILE), ...read(HTTP_FILE) };
    return { running: pid !== null, pid, fenced: s.fenced ?? null, mysql: s.mysql ?? null, redis: s.redis ?? null, services: s.services ?? {} };
  }

  /** The running master's pid from the pid file, checked to be our nginx (pids are reused). */
  masterPid(): number | null {
    const pid = this.readPid();
    if (pid === null || !alive(pid)) return null;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      return cmd.startsWith("nginx: master process") && cmd.includes(this.confPath) ? pid : null;
    } catch {
      return null;
    }
  }

  /** The master's current worker pids. */
  workers(): number[] {
    const pid = this.masterPid();
    return pid === null ? [] : childrenOf(pid);
  }

  private args(conf: string): string[] {
    return ["-p", this.o.prefix.replace(/\/*$/, "/"), "-c", conf, "-e", this.errorLog];
  }

  private base(streamDir: string, httpDir: string): string {
    return renderBase({ ...this.o.base, prefix: this.o.prefix, pidFile: this.pidFile, errorLog: this.errorLog, streamDir, httpDir });
  }

  /** Directories, and the base nginx.conf when it is missing or out of date. */
  private async prepare(): Promise<void> {
    const p = this.o.prefix;
    for (const d of ["stream.d", "http.d", "tmp", "staging/stream.d", "staging/http.d"]) await mkdir(join(p, d), { recursive: true });
    const text = this.base(join(p, "stream.d"), join(p, "http.d"));
    if ((await readFile(this.confPath, "utf8").catch(() => null)) !== text) writeDurable(this.confPath, text);
  }

  /** staging/: the new files beside copies of any other *.conf in the live include dirs. */
  private async stage(files: [string, string][]): Promise<void> {
    const p = this.o.prefix;
    const s = join(p, "staging");
    for (const d of ["stream.d", "http.d"]) {
      await rm(join(s, d), { recursive: true, force: true });
      await mkdir(join(s, d), { recursive: true });
      for (const f of readdirSync(join(p, d))) if (f.endsWith(".conf")) await copyFile(join(p, d, f), join(s, d, f));
    }
    for (const [f, text] of files) atomicWrite(join(s, f), text, { durable: false, mode: 0o644 });
    atomicWrite(join(s, "nginx.conf"), this.base(join(s, "stream.d"), join(s, "http.d")), { durable: false, mode: 0o644 });
  }

  private nginxTest(conf: string): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(this.nginxBin, [...this.args(conf), "-t", "-q"], { timeout: this.timeoutMs }, (err, _out, stderr) => {
        if (!err) return resolve();
        const said = stderr.split("\n").filter((l) => /\[(emerg|alert|crit)\]/.test(l)).join(" | ") || stderr.trim() || err.message;
        reject(new DriverError("portal", `nginx -t rejected the new config (live files unchanged): ${said}`, err));
      });
    });
  }

  /**
   * HUP; resolves once a new worker runs and every old one has stopped accepting (its title
   * turns to "worker process is shutting down" right before it closes its listening sockets,
   * ngx_worker_process_cycle), so that a connection made after apply() meets the new config.
   * Throws with nginx's complaint when the master refuses the new config.
   */
  private async reload(pid: number): Promise<number> {
    const before = childrenOf(pid);
    const logAt = existsSync(this.errorLog) ? readFileSync(this.errorLog).length : 0;
    const t0 = performance.now();
    try {
      process.kill(pid, "SIGHUP");
    } catch (e) {
      throw new DriverError("portal", `could not signal nginx master ${pid}: ${(e as Error).message}`, e);
    }
    for (;;) {
      const fresh = childrenOf(pid).some((w) => !before.includes(w));
      if (fresh && before.every((w) => !alive(w) || title(w).includes("shutting down"))) return ms(t0);
      const said = readFileSync(this.errorLog).subarray(logAt).toString("utf8").split("\n").filter((l) => /\[(emerg|alert)\]/.test(l));
      // a failed bind() is retried 5 times, 500 ms apart (ngx_open_listening_sockets); a HUP
      // sent meanwhile would wait, so this one is over only at "still could not bind()"
      const retrying = said.some((l) => l.includes("bind()")) && !said.some((l) => l.includes("still could not bind()"));
      if (said.length && !retrying) throw new DriverError("portal", `nginx refused the reload and kept its old config: ${said.join(" | ")}`);
      if (performance.now() - t0 > this.timeoutMs) throw new DriverError("portal", `no new nginx worker within ${this.timeoutMs} ms of the reload (pid ${pid})`);
      await sleep(2);
    }
  }

  private readPid(): number | null {
    try {
      const n = Number(readFileSync(this.pidFile, "utf8").trim());
      return Number.isInteger(n) && n > 1 ? n : null;
    } catch {
      return null;
    }
  }

  /** One operation at a time: two reloads racing would confuse the worker check. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** Alive and not a zombie (a zombie answers kill(pid, 0) too). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

const LISTEN_RE = /^\s*listen\s+([^;\s]+)[^;]*;/gm;

/**
 * Tries a bind on every listener the new files add to those nginx holds now: `nginx -t` does
 * not bind, and a reload whose bind fails keeps the master retrying for 2.5 s. Catches a port
 * taken by another process, and an address the node does not have (a VIP it does not hold,
 * without net.ipv4.ip_nonlocal_bind=1).
 */
async function checkNewListeners(texts: string[], old: (string | null)[]): Promise<void> {
  const held = new Set(old.flatMap((t) => [...(t ?? "").matchAll(LISTEN_RE)].map((m) => m[1]!)));
  for (const l of texts.flatMap((t) => [...t.matchAll(LISTEN_RE)].map((m) => m[1]!))) {
    if (held.has(l)) continue;
    const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(l);
    if (!m) continue;
    const host = !m[1] || m[1] === "*" ? "0.0.0.0" : m[1].replace(/^\[|\]$/g, "");
    const err = await new Promise<string | null>((resolve) => {
      const srv = createServer();
      srv.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      srv.listen({ port: Number(m[2]), host, exclusive: true }, () => srv.close(() => resolve(null)));
    });
    if (err) throw new DriverError("portal", `listen ${l}: cannot bind (${err}); nothing changed`);
  }
}

/** A process's title (nginx sets it over its argv). */
function title(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

/** Live children of `pid`: its main thread's /proc/<pid>/task/<pid>/children (nginx's master is
 *  one thread), else a scan of every /proc/<n>/stat (field 4 is the parent). The scan read every
 *  process's stat synchronously, and reload() asks every 2 ms: with the lab's few hundred
 *  processes that held the agent's event loop for most of a reload, beside the promotions a new
 *  holder runs at the same moment. */
export function childrenOf(pid: number): number[] {
  let listed: string | null = null;
  try {
    listed = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
  } catch {
    // no such file (a kernel without CONFIG_PROC_CHILDREN, or pid gone): scan
  }
  if (listed !== null) return listed.split(/\s+/).filter(Boolean).map(Number).filter(alive);
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[1]) === pid && f[0] !== "Z") out.push(Number(e));
    } catch {
      // gone while we looked
    }
  }
  return out;
}

/** temp file, fsync, rename, fsync the directory (env/store.ts). */
const writeDurable = (path: string, text: string) => atomicWrite(path, text, { durable: true, mode: 0o644 });
