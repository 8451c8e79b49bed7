// Host readings (DESIGN §6): CPU, memory and filesystems through systeminformation, load
// average from the kernel (os.loadavg), NIC link state and bond slaves from the kernel's own
// files, time sync from chrony or timedatectl. Nothing here throws to the caller: each part
// of a reading is a Result, so one failing source does not hide the others.
//
// Cost (docs/hardware.md "Idle cost"): systeminformation's Linux fsSize() runs df through a
// shell (~13 ms of CPU in children); the filesystems, which fill slowly, are asked at most
// every fsEveryMs (default 60 s), the last answer reported in between. Memory is read every
// host reading. The CPU load is NOT systeminformation's currentLoad(): on Linux it runs
// `cat /proc/stat | grep cpu` through execSync for the steal and guest columns, which blocks
// the agent's event loop for the child's whole life (a CPU profile of the idle lab agent
// put 33 ms per call there, the loop's largest stall). The same counters without the two
// columns come from os.cpus() (libuv reads /proc/stat in-process); cpuLoadSource() turns
// two samples into the busy share, as currentLoad() does.
//
// NIC link state is read from /sys/class/net/<nic>/{operstate,carrier,speed} rather than
// systeminformation's networkInterfaces(): that one takes ~200 ms per rescan and, without a
// rescan, caches per address set, so a lost carrier on an unchanged address is not seen.
// The bond slave state is parsed from /proc/net/bonding/<bond> (drivers/net/bonding/
// bond_procfs.c), which systeminformation does not read.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus as osCpus, loadavg, type CpuInfo } from "node:os";
// Only the two systeminformation modules used here: the package's index loads all of them
// (graphics, docker, wifi, ...), 10 MB RSS against 3.4 MB for these (measured, Node 20).
// @ts-expect-error no declarations for the submodules; typed through HostSource below
import siFs from "systeminformation/lib/filesystem.js";
// @ts-expect-error as above
import siMem from "systeminformation/lib/memory.js";
import { z } from "zod";
import type { BondInput, HostInput } from "../alarms/types.ts";

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };
const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const err = <T = never>(error: string): Result<T> => ({ ok: false, error });
const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));

export interface BondSlave {
  name: string;
  /** "up" or "down" */
  mii: string;
  speedMbps: number | null;
  duplex: string | null;
  linkFailures: number;
  permanentMac: string | null;
}

export interface BondState {
  /** the mode as the kernel prints it, e.g. "fault-tolerance (active-backup)" */
  modeText: string;
  /** the mode's short name (balance-rr, active-backup, balance-xor, broadcast, 802.3ad,
   * balance-tlb, balance-alb), or null when not recognised */
  mode: string | null;
  primary: string | null;
  activeSlave: string | null;
  mii: string;
  miimonMs: number | null;
  slaves: BondSlave[];
}

// bond_mode_name() in drivers/net/bonding/bond_main.c
const MODES: [string, string][] = [
  ["(round-robin)", "balance-rr"],
  ["(active-backup)", "active-backup"],
  ["(xor)", "balance-xor"],
  ["(broadcast)", "broadcast"],
  ["802.3ad", "802.3ad"],
  ["transmit load balancing", "balance-tlb"],
  ["adaptive load balancing", "balance-alb"],
];

const none = (v: string | undefined): string | null => (v === undefined || v === "" || v === "None" ? null : v);

/** Parses /proc/net/bonding/<bond>. Pure; anything that is not that file is an error value. */
export function parseBonding(text: string): Result<BondState> {
  if (typeof text !== "string") return err("bonding: expected text");
  const bond: Record<string, string> = {};
  const slaves: Record<string, string>[] = [];
  let cur: Record<string, string> = bond;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s/.test(raw)) continue; // 802.3ad details are indented; not needed here
    const m = /^([^:]+):\s*(.*)$/.exec(raw.trim());
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (key === "Slave Interface") slaves.push((cur = { name: value }));
    else if (!(key in cur)) cur[key] = value; // the first of a repeated key (802.3ad sections)
  }
  const modeText = bond["Bonding Mode"];
  if (!modeText) return err(`bonding: no "Bonding Mode:" line in ${JSON.stringify(text.slice(0, 80))}`);
  const parsed: BondSlave[] = [];
  for (const s of slaves) {
    if (!s.name || !s["MII Status"]) return err(`bonding: slave ${JSON.stringify(s.name ?? "")} has no MII Status`);
    const speed = /^(\d+)\s*Mbps/.exec(s.Speed ?? "");
    const failures = Number(s["Link Failure Count"] ?? 0);
    parsed.push({
      name: s.name,
      mii: s["MII Status"],
      speedMbps: speed ? Number(speed[1]) : null,
      duplex: none(s.Duplex === "Unknown" ? undefined : s.Duplex),
      linkFailures: Number.isFinite(failures) ? failures : 0,
      permanentMac: none(s["Permanent HW addr"]),
    });
  }
  const miimon = Number(bond["MII Polling Interval (ms)"]);
  return ok({
    modeText,
    mode: MODES.find(([k]) => modeText.includes(k))?.[1] ?? null,
    primary: none(bond["Primary Slave"]?.replace(/\s*\(.*\)$/, "")),
    activeSlave: none(bond["Currently Active Slave"]),
    mii: bond["MII Status"] ?? "unknown",
    miimonMs: Number.isFinite(miimon) && bond["MII Polling Interval (ms)"] !== undefined ? miimon : null,
    slaves: parsed,
  });
}

export type SyncState = "synced" | "unsynced" | "unknown";

export interface TimeSync {
  state: SyncState;
  source: "chrony" | "timedatectl" | null;
  /** chrony: the system clock's offset from NTP time, seconds (positive: fast) */
  offsetSeconds: number | null;
  detail: string;
}

/** `chronyc -n -c tracking`: CSV, the 5th field the system time offset (s), the last the
 * leap status ("Normal", "Insert second", "Delete second", "Not synchronised"). */
export function parseChronyTracking(out: string): Result<TimeSync> {
  const line = out.split(/\r?\n/).find((l) => l.includes(","));
  const f = line?.split(",") ?? [];
  if (f.length < 14) return err(`chronyc tracking: expected 14 CSV fields, got ${JSON.stringify(out.slice(0, 80))}`);
  const stratum = Number(f[2]);
  const leap = f[f.length - 1]!.trim();
  const offset = Number(f[4]);
  const synced = leap !== "Not synchronised" && stratum >= 1 && stratum <= 15;
  return ok({ state: synced ? "synced" : "unsynced", source: "chrony", offsetSeconds: Number.isFinite(offset) ? offset : null, detail: `reference ${f[1]}, stratum ${f[2]}, leap ${leap}` });
}

/** `timedatectl show -p NTPSynchronized --value` (or the whole `show`): yes / no. */
export function parseTimedatectl(out: string): Result<TimeSync> {
  const m = /^(?:NTPSynchronized=)?(yes|no)\s*$/m.exec(out);
  if (!m) return err(`timedatectl: expected NTPSynchronized yes or no, got ${JSON.stringify(out.slice(0, 80))}`);
  return ok({ state: m[1] === "yes" ? "synced" : "unsynced", source: "timedatectl", offsetSeconds: null, detail: `NTPSynchronized=${m[1]}` });
}

export interface Nic {
  name: string;
  /** /sys/class/net/<nic>/operstate (RFC 2863 words: up, down, lowerlayerdown, ...) */
  operstate: string;
  /** carrier 1/0; null when the interface is down (the kernel refuses the read) */
  carrier: boolean | null;
  speedMbps: number | null;
}

export interface Filesystem {
  mount: string;
  device: string;
  type: string;
  sizeBytes: number;
  usedBytes: number;
  usedRatio: number;
}

export interface HostReading {
  cpu: Result<{ usedRatio: number; cores: number }>;
  load: { avg1: number; avg5: number; avg15: number };
  memory: Result<{ totalBytes: number; usedBytes: number; availableBytes: number; usedRatio: number }>;
  filesystems: Result<Filesystem[]>;
  nics: Result<Nic[]>;
  bonds: { name: string; state: Result<BondState> }[];
  timeSync: TimeSync;
}

export type Exec = (file: string, args: string[], timeoutMs: number) => Promise<{ code: number; stdout: string; stderr: string; missing: boolean }>;

export const execProgram: Exec = (file, args, timeoutMs) =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: "utf8", env: { ...process.env, LC_ALL: "C" } }, (e, stdout, stderr) => {
      const code = e ? (typeof (e as NodeJS.ErrnoException).code === "number" ? Number((e as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), missing: (e as NodeJS.ErrnoException | null)?.code === "ENOENT" });
    });
  });

/** Where CPU, memory and filesystem figures come from: systeminformation (a fake in tests). */
export interface HostSource {
  currentLoad(): Promise<{ currentLoad: number; cpus: unknown[] }>;
  mem(): Promise<{ total: number; available: number }>;
  fsSize(): Promise<{ fs: string; type: string; size: number; used: number; mount: string }[]>;
}

/**
 * The busy share of all CPUs since the previous call (since boot at the first), from the
 * kernel's per-CPU tick counters as os.cpus() gives them: 100 x (1 - idle / total) over the
 * difference of two samples. A sample with no ticks in between repeats the last figure.
 */
export function cpuLoadSource(read: () => CpuInfo[] = osCpus): HostSource["currentLoad"] {
  let prev: { busy: number; total: number } | null = null;
  let last = 0;
  return async () => {
    const all = read();
    let total = 0;
    let idle = 0;
    for (const c of all) {
      const t = c.times;
      total += t.user + t.nice + t.sys + t.idle + t.irq;
      idle += t.idle;
    }
    const busy = total - idle;
    const dTotal = total - (prev?.total ?? 0);
    const dBusy = busy - (prev?.busy ?? 0);
    // counters only grow; a smaller sample (CPU hot-unplugged) restarts from this one
    if (dTotal > 0 && dBusy >= 0) last = (100 * dBusy) / dTotal;
    prev = { busy, total };
    return { currentLoad: last, cpus: all };
  };
}

const si: HostSource = {
  currentLoad: cpuLoadSource(),
  mem: () => (siMem as { mem: HostSource["mem"] }).mem(),
  fsSize: () => (siFs as { fsSize: HostSource["fsSize"] }).fsSize(),
};

/**
 * The source the watch keeps across readings: systeminformation, its filesystems asked at
 * most every fsEveryMs (df is a process) and the last answer given in between. A failed
 * answer is not kept: the next reading asks again.
 */
export function hostSource(o: { base?: HostSource; now?: () => number; fsEveryMs?: number } = {}): HostSource {
  const base = o.base ?? si;
  const now = o.now ?? (() => performance.now());
  const every = o.fsEveryMs ?? 60_000;
  let last: { at: number; fs: Awaited<ReturnType<HostSource["fsSize"]>> } | null = null;
  return {
    currentLoad: () => base.currentLoad(),
    mem: () => base.mem(),
    async fsSize() {
      const t = now();
      if (last && t - last.at < every) return last.fs;
      const fs = await base.fsSize();
      last = { at: t, fs };
      return fs;
    },
  };
}

export interface HostOptions {
  /** bonds to read, each from /proc/net/bonding/<name> or `file` (the lab's bondd); default:
   * every bond in /proc/net/bonding */
  bonds?: { name: string; file?: string }[];
  /** NICs to report; default: every one in /sys/class/net except lo */
  nics?: string[];
  /** filesystem types left out (pseudo and image filesystems) */
  excludeFsTypes?: string[];
  timeoutMs?: number;
  /** keep one (hostSource()) across readings: it asks for the filesystems less often */
  source?: HostSource;
  /** a time sync reading to report again instead of asking chrony or timedatectl (a process,
   *  ~13 ms of CPU): the caller reads it less often than the rest */
  timeSync?: TimeSync;
  exec?: Exec;
  readFile?: (path: string) => string;
  listDir?: (path: string) => string[];
}

export const DEFAULT_EXCLUDE_FS = ["tmpfs", "devtmpfs", "squashfs", "overlay", "iso9660", "ramfs", "efivarfs", "nsfs", "fuse.lxcfs"];

async function attempt<T>(what: string, f: () => Promise<T>): Promise<Result<T>> {
  try {
    return ok(await f());
  } catch (e) {
    return err(`${what}: ${msg(e)}`);
  }
}

/** One full host reading. Never rejects. */
export async function readHost(o: HostOptions = {}): Promise<HostReading> {
  const sys = o.source ?? si;
  const read = o.readFile ?? ((p: string) => readFileSync(p, "utf8"));
  const list = o.listDir ?? ((p: string) => readdirSync(p));
  const exclude = new Set(o.excludeFsTypes ?? DEFAULT_EXCLUDE_FS);
  const [cpu, memory, filesystems, timeSync] = await Promise.all([
    attempt("cpu", async () => {
      const l = await sys.currentLoad();
      return { usedRatio: Math.min(1, Math.max(0, l.currentLoad / 100)), cores: l.cpus.length };
    }),
    attempt("memory", async () => {
      const m = await sys.mem();
      const used = m.total - m.available; // MemTotal - MemAvailable: what cannot be reclaimed
      return { totalBytes: m.total, usedBytes: used, availableBytes: m.available, usedRatio: m.total > 0 ? used / m.total : 0 };
    }),
    attempt("filesystems", async () =>
      (await sys.fsSize())
        .filter((f) => !exclude.has(f.type) && f.size > 0)
        .map((f) => ({ mount: f.mount, device: f.fs, type: f.type, sizeBytes: f.size, usedBytes: f.used, usedRatio: f.used / f.size })),
    ),
    o.timeSync ?? readTimeSync(o.exec ?? execProgram, o.timeoutMs ?? 2000),
  ]);
  const [avg1, avg5, avg15] = loadavg() as [number, number, number];
  return { cpu, load: { avg1, avg5, avg15 }, memory, filesystems, nics: readNics(o.nics, read, list), bonds: readBonds(o.bonds, read, list), timeSync };
}

function readNics(names: string[] | undefined, read: (p: string) => string, list: (p: string) => string[]): Result<Nic[]> {
  try {
    const all = names ?? list("/sys/class/net").filter((n) => n !== "lo");
    return ok(
      all.map((name) => {
        const get = (f: string): string | null => {
          try {
            return read(`/sys/class/net/${name}/${f}`).trim();
          } catch {
            return null; // carrier and speed are EINVAL on a down interface
          }
        };
        const speed = Number(get("speed"));
        const carrier = get("carrier");
        return { name, operstate: get("operstate") ?? "unknown", carrier: carrier === null ? null : carrier === "1", speedMbps: Number.isFinite(speed) && speed > 0 ? speed : null };
      }),
    );
  } catch (e) {
    return err(`nics: ${msg(e)}`);
  }
}

/** Only the bonds (a file read each, no process): for polling them more often than the rest. */
export function readBondStates(o: HostOptions = {}): HostReading["bonds"] {
  return readBonds(o.bonds, o.readFile ?? ((p: string) => readFileSync(p, "utf8")), o.listDir ?? ((p: string) => readdirSync(p)));
}

function readBonds(bonds: HostOptions["bonds"], read: (p: string) => string, list: (p: string) => string[]): HostReading["bonds"] {
  let which = bonds;
  if (!which) {
    try {
      which = list("/proc/net/bonding").map((name) => ({ name }));
    } catch {
      which = []; // no bonding driver loaded: no bonds
    }
  }
  return which.map(({ name, file }) => {
    const path = file ?? `/proc/net/bonding/${name}`;
    let text: string;
    try {
      text = read(path);
    } catch (e) {
      return { name, state: err(`${path}: ${msg(e)}`) };
    }
    const r = parseBonding(text);
    return { name, state: r.ok ? r : err(`${path}: ${r.error}`) };
  });
}

/** chrony first, then timedatectl; "unknown" when neither is there or answers. */
export async function readTimeSync(exec: Exec, timeoutMs: number): Promise<TimeSync> {
  const why: string[] = [];
  const c = await exec("chronyc", ["-n", "-c", "tracking"], timeoutMs);
  if (!c.missing) {
    const r = c.code === 0 ? parseChronyTracking(c.stdout) : err(`chronyc: exit ${c.code}: ${(c.stderr || c.stdout).trim().slice(0, 120)}`);
    if (r.ok) return r.value;
    why.push(r.error);
  }
  const t = await exec("timedatectl", ["show", "-p", "NTPSynchronized", "--value"], timeoutMs);
  if (!t.missing) {
    const r = t.code === 0 ? parseTimedatectl(t.stdout) : err(`timedatectl: exit ${t.code}: ${(t.stderr || t.stdout).trim().slice(0, 120)}`);
    if (r.ok) return r.value;
    why.push(r.error);
  }
  return { state: "unknown", source: null, offsetSeconds: null, detail: why.join("; ") || "neither chronyc nor timedatectl is installed" };
}

/** The alarm rules' view of a host reading (parts that failed are left out: held). */
export function hostAlarmInput(node: string, h: HostReading): HostInput {
  return {
    node,
    filesystems: h.filesystems.ok ? h.filesystems.value.map((f) => ({ mount: f.mount, usedRatio: f.usedRatio })) : undefined,
    memUsedRatio: h.memory.ok ? h.memory.value.usedRatio : null,
    timeSync: h.timeSync.state,
  };
}

/** The alarm rules' view of the bonds that could be read. */
export function bondAlarmInputs(node: string, h: Pick<HostReading, "bonds">): BondInput[] {
  return h.bonds.flatMap((b) =>
    b.state.ok ? [{ node, bond: b.name, mode: b.state.value.mode ?? b.state.value.modeText, activeSlave: b.state.value.activeSlave, slaves: b.state.value.slaves.map((s) => ({ name: s.name, mii: s.mii, linkFailures: s.linkFailures })) }] : [],
  );
}

/** Config fragment (e.g. under `hw.host:`): which bonds and NICs, which filesystem types not. */
export const HostSection = z
  .object(
    {
      bonds: z.array(z.object({ name: z.string({ error: "a bond name" }).regex(/^[A-Za-z0-9_.-]{1,15}$/), file: z.string({ error: "an absolute path" }).startsWith("/").optional() }).strict(), { error: "a list of {name, file}" }).optional(),
      nics: z.array(z.string({ error: "a NIC name" }).regex(/^[A-Za-z0-9_.-]{1,15}$/), { error: "a list of NIC names" }).optional(),
      exclude_fs_types: z.array(z.string(), { error: "a list of filesystem types" }).default(DEFAULT_EXCLUDE_FS),
    },
    { error: "a mapping (bonds, nics, exclude_fs_types)" },
  )
  .strict();

export const toHostOptions = (f: z.infer<typeof HostSection>): HostOptions => ({ bonds: f.bonds, nics: f.nics, excludeFsTypes: f.exclude_fs_types });
