// Host readings (DESIGN §6): CPU, memory and filesystems, load average, NIC link state and
// bond slaves, all from the kernel's own files in this process, and time sync from chrony or
// timedatectl. Nothing here throws to the caller: each part of a reading is a Result, so one
// failing source does not hide the others.
//
// DESIGN §6 names systeminformation for CPU, memory and disks. Its Linux paths run shells:
// currentLoad() runs `cat /proc/stat | grep cpu` with execSync (three processes, and the
// agent's event loop blocked meanwhile), fsSize() `df` through /bin/sh. Measured per host
// reading: 11 ms of the agent's CPU plus 14 ms in children for those two, 3 ms for mem(). The
// same numbers come from /proc/stat, /proc/meminfo, /proc/self/mounts and statfs(2), which is
// what systeminformation and df read in the end, with no process (docs/hardware.md).
//
// NIC link state is read from /sys/class/net/<nic>/{operstate,carrier,speed} rather than
// systeminformation's networkInterfaces(): that one takes ~200 ms per rescan and, without a
// rescan, caches per address set, so a lost carrier on an unchanged address is not seen.
// The bond slave state is parsed from /proc/net/bonding/<bond> (drivers/net/bonding/
// bond_procfs.c).
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { loadavg } from "node:os";
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

/** Where CPU, memory and filesystem figures come from (hostSource(); a fake in tests). */
export interface HostSource {
  /** CPU busy share since the previous call (the first: since boot), in percent, and the cores */
  currentLoad(): Promise<{ currentLoad: number; cpus: unknown[] }>;
  mem(): Promise<{ total: number; available: number }>;
  /** mounted local filesystems, types in `exclude` left out; size and used in bytes */
  fsSize(exclude: ReadonlySet<string>): Promise<{ fs: string; type: string; size: number; used: number; mount: string }[]>;
}

export interface CpuTimes {
  /** jiffies spent busy: everything but idle and iowait */
  busy: number;
  total: number;
  cores: number;
}

/** /proc/stat (proc(5)): the "cpu" line's cumulative jiffies and the number of cpuN lines. */
export function parseProcStat(text: string): Result<CpuTimes> {
  const m = /^cpu +([\d ]+)$/m.exec(text);
  const n = m ? m[1]!.trim().split(/ +/).map(Number) : [];
  if (n.length < 4 || n.some((x) => !Number.isFinite(x))) return err(`/proc/stat: no "cpu" line of numbers in ${JSON.stringify(text.slice(0, 80))}`);
  // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
  // counted in user and nice
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = n as [number, number, number, number, ...number[]];
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return ok({ busy: total - idle - iowait, total, cores: (text.match(/^cpu\d+ /gm) ?? []).length || 1 });
}

/** The busy share between two readings (0..1); since boot when there is no earlier one. */
export function cpuBusyRatio(prev: CpuTimes | null, cur: CpuTimes): number {
  const dt = cur.total - (prev?.total ?? 0);
  const db = cur.busy - (prev?.busy ?? 0);
  return dt > 0 ? Math.min(1, Math.max(0, db / dt)) : 0;
}

/** /proc/meminfo: MemTotal and MemAvailable (kB), in bytes. */
export function parseMeminfo(text: string): Result<{ total: number; available: number }> {
  const kb = (k: string) => {
    const m = new RegExp(`^${k}: +(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = kb("MemTotal");
  // MemAvailable since Linux 3.14; before it, free + buffers + page cache
  const free = kb("MemFree");
  const available = kb("MemAvailable") ?? (free !== null ? free + (kb("Buffers") ?? 0) + (kb("Cached") ?? 0) : null);
  if (total === null || available === null) return err(`/proc/meminfo: no MemTotal or MemAvailable in ${JSON.stringify(text.slice(0, 80))}`);
  return ok({ total, available });
}

export interface Mount {
  device: string;
  mount: string;
  type: string;
}

/** /proc/self/mounts (fstab(5) format: space, tab, newline and backslash as octal escapes). */
export function parseMounts(text: string): Mount[] {
  const un = (x: string) => x.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split("\n").flatMap((l) => {
    const f = l.split(" ");
    return f.length >= 3 && f[1]!.startsWith("/") ? [{ device: un(f[0]!), mount: un(f[1]!), type: f[2]! }] : [];
  });
}

/** Filesystems with no disk behind them (statfs says 0 blocks, or would mount one: autofs);
 *  df leaves them out too. */
const PSEUDO_FS = new Set([
  "proc", "sysfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs", "bpf", "mqueue", "hugetlbfs", "pstore",
  "configfs", "fusectl", "autofs", "binfmt_misc", "rpc_pipefs", "nsfs", "selinuxfs", "efivarfs", "ramfs",
]);

/** df -l's idea of a remote filesystem (gnulib ME_REMOTE): host:path, //host/share, or these types. */
export function isRemote(m: Mount): boolean {
  return m.device.includes(":") || m.device.startsWith("//") || /^(nfs4?|cifs|smb3|smbfs|afs|ceph|glusterfs|9p|fuse\.sshfs|lustre)$/.test(m.type);
}

export type StatFs = (path: string) => Promise<{ bsize: number; blocks: number; bfree: number }>;

/**
 * The kernel as the source of CPU, memory and filesystem figures (no process). It keeps the
 * previous CPU times (the busy share is since then) and the statfs calls that have not
 * returned: a hung mount holds one libuv thread, not one more per reading.
 */
export function hostSource(o: { readFile?: (path: string) => string; statfs?: StatFs; timeoutMs?: number } = {}): HostSource {
  const read = o.readFile ?? ((p: string) => readFileSync(p, "utf8"));
  const sf: StatFs = o.statfs ?? ((p: string) => statfs(p));
  const timeoutMs = o.timeoutMs ?? 2000;
  let prev: CpuTimes | null = null;
  const pending = new Set<string>();
  return {
    async currentLoad() {
      const r = parseProcStat(read("/proc/stat"));
      if (!r.ok) throw new Error(r.error);
      const ratio = cpuBusyRatio(prev, r.value);
      prev = r.value;
      return { currentLoad: ratio * 100, cpus: Array.from({ length: r.value.cores }) };
    },
    async mem() {
      const r = parseMeminfo(read("/proc/meminfo"));
      if (!r.ok) throw new Error(r.error);
      return r.value;
    },
    async fsSize(exclude) {
      const mounts = new Map<string, Mount>(); // a later mount on the same path hides the earlier
      for (const m of parseMounts(read("/proc/self/mounts"))) {
        if (PSEUDO_FS.has(m.type) || exclude.has(m.type) || isRemote(m)) mounts.delete(m.mount);
        else mounts.set(m.mount, m);
      }
      const one = async (m: Mount) => {
        if (pending.has(m.mount)) throw new Error(`statfs ${m.mount}: the previous call has not returned`);
        pending.add(m.mount);
        try {
          const s = await sf(m.mount);
          return { fs: m.device, type: m.type, mount: m.mount, size: s.blocks * s.bsize, used: (s.blocks - s.bfree) * s.bsize };
        } finally {
          pending.delete(m.mount);
        }
      };
      const all = Promise.all([...mounts.values()].map(one));
      all.catch(() => {}); // rejected after the timeout won: not unhandled
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`statfs did not return within ${timeoutMs} ms (${[...pending].join(", ")})`)), timeoutMs);
      });
      try {
        return await Promise.race([all, late]);
      } finally {
        clearTimeout(timer);
      }
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
  /** keep one (hostSource()) across readings: the CPU share is since the previous reading */
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
  const sys = o.source ?? hostSource({ timeoutMs: o.timeoutMs });
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
      (await sys.fsSize(exclude))
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
