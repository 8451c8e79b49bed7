// One VM's QEMU process, driven over QMP (issue 14 §1): start it (its disks made first), find it
// again after an agent restart (it daemonizes, so it outlives the agent), its status, pause and
// continue, a graceful shutdown (system_powerdown) with a deadline and then SIGKILL, a kill, each
// confirmed by the process being gone. A driver: it does what it is told and says what it saw;
// the local VM manager (ha/vm-local.ts) decides.
import { spawn } from "node:child_process";
import { closeSync, copyFileSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import type { Logger } from "../env/env.ts";
import type { VmDef } from "../ha/vm-types.ts";
import { qemuArgs, vmPaths, type VmPaths } from "./qemu-args.ts";
import { Qmp, type QmpEvent } from "./qmp.ts";
import { DriverError } from "./types.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** /proc/<pid>/stat field 22 (starttime, clock ticks since boot): with the pid, one process for good. */
export function procStart(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return f[0] === "Z" || f[0] === "X" ? null : (f[19] ?? null);
  } catch {
    return null;
  }
}

export const alive = (pid: number) => procStart(pid) !== null;

/** Waits until `pid` is gone (or a zombie), up to `ms`; true if it is. */
export async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (alive(pid)) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

export function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(n) && n > 1 ? n : null;
  } catch {
    return null;
  }
}

/** Runs a program that daemonizes; resolves once its parent exited 0, rejects with its stderr. */
export function runDaemon(bin: string, args: string[], timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => { p.kill("SIGKILL"); reject(new Error(`${bin} did not start within ${timeoutMs} ms`)); }, timeoutMs);
    p.on("error", (e) => { clearTimeout(timer); reject(e); });
    p.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${bin} exited ${code}: ${err.trim().split("\n").slice(-3).join("; ") || "no message"}`));
    });
  });
}

export interface VmProcessOptions {
  vmsDir: string;
  qemu: string;
  machine: string;
  log: Logger;
}

export class VmProcess {
  readonly paths: VmPaths;
  qmp: Qmp | null = null;
  pid: number | null = null;
  /** "pid/starttime" of the running QEMU */
  inst: string | null = null;
  /** wall ms it started (or was found) */
  startedAt: number | null = null;
  private readonly eventFns = new Set<(e: QmpEvent) => void>();

  constructor(
    readonly def: VmDef,
    private readonly o: VmProcessOptions,
  ) {
    this.paths = vmPaths(o.vmsDir, def.name);
  }

  /** A QEMU of this VM still runs (an agent restart): take it over. */
  async adopt(): Promise<boolean> {
    const pid = readPid(this.paths.pid);
    if (!pid || !alive(pid)) return false;
    let cmd = "";
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8"); } catch { return false; }
    if (!cmd.includes(`${this.def.name},debug-threads=off`) || !cmd.includes(this.paths.qmp)) return false;
    await this.connect(pid);
    this.startedAt = Date.now() - procAgeMs(pid);
    return true;
  }

  /** Makes the disks, starts QEMU (paused with -S when asked, or waiting for a migration), connects QMP. */
  async start(o: { accel: "kvm" | "tcg"; paused?: boolean; incoming?: boolean }): Promise<void> {
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o750 });
    this.makeDisks();
    for (const f of [this.paths.qmp, this.paths.ctl, this.paths.qga, this.paths.serial, this.paths.pid]) rmSync(f, { force: true });
    const args = qemuArgs({ qemu: this.o.qemu, def: this.def, paths: this.paths, accel: o.accel, machine: this.o.machine, paused: !!o.paused, incoming: !!o.incoming });
    try {
      await runDaemon(this.o.qemu, args);
    } catch (e) {
      throw new DriverError("vm", `starting ${this.def.name}: ${(e as Error).message}`, e);
    }
    const pid = readPid(this.paths.pid);
    if (!pid) throw new DriverError("vm", `starting ${this.def.name}: QEMU wrote no pid file ${this.paths.pid}`);
    await this.connect(pid);
    this.startedAt = Date.now();
  }

  private async connect(pid: number): Promise<void> {
    this.pid = pid;
    this.inst = `${pid}/${procStart(pid)}`;
    const q = await Qmp.connect(this.paths.qmp, { timeoutMs: 5000 });
    q.onEvent((e) => { for (const fn of this.eventFns) fn(e); });
    this.qmp = q;
  }

  onEvent(fn: (e: QmpEvent) => void): () => void {
    this.eventFns.add(fn);
    return () => this.eventFns.delete(fn);
  }

  /** Whether the QEMU process runs. */
  running(): boolean {
    return this.pid !== null && alive(this.pid) && procStart(this.pid) === this.inst?.split("/")[1];
  }

  /** QMP query-status: running, paused, prelaunch, inmigrate, postmigrate, shutdown, ... */
  async status(): Promise<string> {
    const r = await this.need().execute<{ status: string }>("query-status");
    return r.status;
  }

  async pause(): Promise<void> {
    await this.need().execute("stop");
  }

  async cont(): Promise<void> {
    await this.need().execute("cont");
  }

  /**
   * The guest is asked to power off (ACPI, system_powerdown); after `deadlineMs` QEMU is killed.
   * Resolves with what happened, once the process is gone.
   */
  async stop(deadlineMs: number): Promise<string> {
    const pid = this.pid;
    if (!pid || !this.running()) return this.gone("was not running");
    const t0 = performance.now();
    try {
      await this.qmp?.execute("system_powerdown", undefined, 2000);
    } catch (e) {
      this.o.log.warn(`${this.def.name}: system_powerdown failed: ${(e as Error).message}`);
    }
    if (await waitGone(pid, deadlineMs)) return this.gone(`powered off by its guest in ${Math.round(performance.now() - t0)} ms`);
    const k = await this.kill();
    return `the guest did not power off within ${deadlineMs} ms: ${k}`;
  }

  /** SIGKILL, confirmed by the process being gone. */
  async kill(): Promise<string> {
    const pid = this.pid;
    if (!pid || !this.running()) return this.gone("no QEMU process");
    try { process.kill(pid, "SIGKILL"); } catch { /* gone already */ }
    if (!(await waitGone(pid, 5000))) throw new DriverError("vm", `${this.def.name}: QEMU pid ${pid} is still there 5 s after SIGKILL`);
    return this.gone(`killed QEMU pid ${pid}; gone`);
  }

  /** QMP quit (a migrated source, which never runs again), confirmed. */
  async quit(): Promise<string> {
    const pid = this.pid;
    try { await this.qmp?.execute("quit", undefined, 2000); } catch { /* the connection closes as it quits */ }
    if (pid && !(await waitGone(pid, 3000))) return this.kill();
    return this.gone("quit");
  }

  private gone(why: string): string {
    this.qmp?.close();
    this.qmp = null;
    this.pid = null;
    this.inst = null;
    this.startedAt = null;
    return why;
  }

  need(): Qmp {
    if (!this.qmp?.isOpen) throw new DriverError("vm", `${this.def.name}: no QMP connection (QEMU not running?)`);
    return this.qmp;
  }

  /** Each disk's file: kept if there (with its size checked), else made from its image or empty (sparse). */
  makeDisks(): void {
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o750 });
    for (const d of this.def.disks) makeDisk(this.paths.disk(d.name), d.sizeMb, d.image);
  }
}

export function makeDisk(file: string, sizeMb: number, image: string | null): void {
  const size = sizeMb * 1024 * 1024;
  if (existsSync(file)) {
    const have = statSync(file).size;
    if (have !== size) throw new DriverError("vm", `disk ${file} is ${have} bytes, its definition says ${size} (${sizeMb} MB): not used`);
    return;
  }
  if (image) {
    copyFileSync(image, `${file}.new`);
    if (statSync(`${file}.new`).size > size) throw new DriverError("vm", `image ${image} is larger than the disk (${sizeMb} MB)`);
  } else closeSync(openSync(`${file}.new`, "w", 0o640));
  const fd = openSync(`${file}.new`, "r+");
  try { ftruncateSync(fd, size); } finally { closeSync(fd); }
  // renamed into place: a crash half-way leaves no disk of the wrong size
  renameSync(`${file}.new`, file);
}

/** ms since the process started (/proc/uptime and its starttime in clock ticks, USER_HZ 100). */
function procAgeMs(pid: number): number {
  try {
    const up = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    const st = Number(procStart(pid));
    return Math.max(0, Math.round((up - st / 100) * 1000));
  } catch {
    return 0;
  }
}
