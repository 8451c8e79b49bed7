// What idle agents cost (issue 5's figure: at most 80 MB RSS and 1 % of a core): samples
// /proc/PID/status VmRSS and /proc/PID/stat utime+stime of each agent, and the CPU of its
// children, over SECONDS, and prints one line per agent and one summary line.
//
//   make bench-idle                                  # the lab's three agents, 60 s
//   node --import tsx test/lab/bench-idle.ts [--seconds N] [--interval-ms N] [PID|NAME=PID ...]
//   node --import tsx test/lab/bench-idle.ts --pieces [--seconds N]   # no lab: see below
//
// Without PIDs it finds the lab's agents the way the lab does: $LAB_STATE (default
// /run/bollard-lab, as ha-lab.ts) /nodeN/run/agent.pid, which
// holds "PID STARTTIME"; a PID whose start time no longer matches is not the agent (a
// restart): it is skipped and said. It only reads /proc: it never starts or stops anything.
//
// Children: the kernel adds a child's CPU to its parent's cutime/cstime when the parent reaps
// it, so short-lived children (ipmitool, df, ip) are counted from the agent's own stat; a
// child still alive (nginx of the portal, the sd_notify helper) is counted from its stat, as
// total = utime + stime + cutime + cstime. The sum over both never counts a child twice: at
// the reaping its total moves from one term to the other. Grandchildren still running at the
// end are missed (a few ms at most).
//
// Exit code: 0 when every agent was sampled to the end, 1 otherwise, 2 usage. The verdict
// against the target is printed, not used as an exit code: the figure is to be read.
//
// --pieces measures, in this process and without the lab, what the agent's periodic reads
// cost each, at the rate the agent runs them, for N seconds each (default 15): the VIP check
// both ways (on lo), the host reading, the time sync, and `ipmitool sensor` as one process
// per call and in an `ipmitool shell` against an ipmi_sim on 127.0.5.1 (as root, with
// OpenIPMI installed; test/broker/bmc-harness.ts). It prints this process's CPU and its
// children's per call (a live shell's from its own stat), and an idle line to subtract.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { S } from "./ha-lab.ts";

const TARGET_RSS_MB = 80;
const TARGET_CPU_PCT = 1;

interface Args {
  seconds: number;
  intervalMs: number;
  targets: { name: string; pid: number }[];
}

function usage(msg: string): never {
  console.error(`bench-idle: ${msg}\nusage: bench-idle.ts [--seconds N] [--interval-ms N] [PID|NAME=PID ...]`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 60, intervalMs: 1000, targets: [] };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === "--seconds" || x === "--interval-ms") {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) usage(`${x}: expected a positive number, got ${JSON.stringify(argv[i])}`);
      if (x === "--seconds") a.seconds = v;
      else a.intervalMs = v;
    } else if (/^(?:[A-Za-z0-9_.-]+=)?\d+$/.test(x)) {
      const [name, pid] = x.includes("=") ? x.split("=") : [`pid${x}`, x];
      a.targets.push({ name: name!, pid: Number(pid) });
    } else usage(`unknown argument ${JSON.stringify(x)}`);
  }
  return a;
}

/** /proc/PID/stat fields after the command (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

// proc(5): after "(comm)", field 3 state is index 0; utime 14 -> 11, stime 12, cutime 13,
// cstime 14, starttime 22 -> 19
const own = (f: string[]) => Number(f[11]) + Number(f[12]);
const reaped = (f: string[]) => Number(f[13]) + Number(f[14]);
const startTime = (f: string[]) => f[19]!;

function labAgents(): { name: string; pid: number }[] {
  const out: { name: string; pid: number }[] = [];
  let nodes: string[] = [];
  try {
    nodes = readdirSync(S).filter((n) => /^node\d+$/.test(n)).sort();
  } catch {
    usage(`no lab at ${S} (is it up? LAB_STATE=...), and no PIDs given`);
  }
  for (const n of nodes) {
    let pidFile: string;
    try {
      pidFile = readFileSync(`${S}/${n}/run/agent.pid`, "utf8").trim();
    } catch {
      console.log(`${n}: no agent (no ${S}/${n}/run/agent.pid)`);
      continue;
    }
    const [pid, start] = pidFile.split(/\s+/);
    const f = statFields(Number(pid));
    if (!f || (start && startTime(f) !== start)) {
      console.log(`${n}: agent.pid says ${pidFile}, but that process is gone or another one: skipped`);
      continue;
    }
    out.push({ name: n, pid: Number(pid) });
  }
  if (!out.length) usage(`no running agent found in ${S}`);
  return out;
}

/** The direct children of pid (every thread's). */
function children(pid: number): number[] {
  const kids = new Set<number>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").split(" ")) if (c.trim()) kids.add(Number(c));
    }
    return [...kids];
  } catch {
    // no CONFIG_PROC_CHILDREN: scan every process's parent
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      const f = statFields(Number(d));
      if (f && Number(f[1]) === pid) kids.add(Number(d));
    }
    return [...kids];
  }
}

interface Sample {
  at: number;
  /** ticks */
  self: number;
  /** ticks: reaped children + live children's totals */
  kids: number;
  rssKb: number;
  anonKb: number;
  fileKb: number;
  threads: number;
}

function sample(pid: number, start: string): Sample | null {
  const f = statFields(pid);
  if (!f || startTime(f) !== start) return null;
  let kids = reaped(f);
  for (const c of children(pid)) {
    const g = statFields(c);
    if (g) kids += own(g) + reaped(g);
  }
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { at: performance.now(), self: own(f), kids, rssKb: kb("VmRSS"), anonKb: kb("RssAnon"), fileKb: kb("RssFile"), threads: kb("Threads") };
}

function clkTck(): number {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
}

function flagsOf(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const flags = argv.slice(1).filter((a) => a.startsWith("--") && !a.startsWith("--config"));
    const i = argv.findIndex((a) => a.endsWith(".js"));
    return (i > 0 ? argv.slice(1, i) : flags).join(" ") || "(no node flags)";
  } catch {
    return "?";
  }
}

const mb = (kb: number) => kb / 1024;
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2));
  const targets = a.targets.length ? a.targets : labAgents();
  const hz = clkTck();
  const watched = targets.flatMap((t) => {
    const f = statFields(t.pid);
    if (!f) {
      console.log(`${t.name}: no process ${t.pid}: skipped`);
      return [];
    }
    return [{ ...t, start: startTime(f), flags: flagsOf(t.pid), samples: [] as Sample[], lost: false }];
  });
  if (!watched.length) usage("nothing to sample");
  console.log(`sampling ${watched.map((w) => `${w.name} (${w.pid}, ${w.flags})`).join(", ")} every ${a.intervalMs} ms for ${a.seconds} s`);
  const end = performance.now() + a.seconds * 1000;
  for (;;) {
    for (const w of watched) {
      if (w.lost) continue;
      const s = sample(w.pid, w.start);
      if (s) w.samples.push(s);
      else {
        w.lost = true;
        console.log(`${w.name}: process ${w.pid} ended after ${w.samples.length} samples: left out`);
      }
    }
    const left = end - performance.now();
    if (left <= 0) break;
    await new Promise((r) => setTimeout(r, Math.min(a.intervalMs, left)));
  }
  const rows = watched.filter((w) => !w.lost && w.samples.length >= 2).map((w) => {
    const s0 = w.samples[0]!;
    const s1 = w.samples[w.samples.length - 1]!;
    const secs = (s1.at - s0.at) / 1000;
    const rss = w.samples.map((s) => mb(s.rssKb));
    const r = {
      name: w.name,
      secs,
      cpu: ((s1.self - s0.self) / hz / secs) * 100,
      kids: ((s1.kids - s0.kids) / hz / secs) * 100,
      rssLast: mb(s1.rssKb),
      rssMax: Math.max(...rss),
      rssMean: rss.reduce((x, y) => x + y, 0) / rss.length,
    };
    console.log(
      `${w.name} (pid ${w.pid}): RSS ${f1(r.rssLast)} MB (mean ${f1(r.rssMean)}, max ${f1(r.rssMax)}; anon ${f1(mb(s1.anonKb))}, file ${f1(mb(s1.fileKb))}; ${s1.threads} threads), ` +
        `CPU ${f2(r.cpu)} % of a core + ${f2(r.kids)} % in children = ${f2(r.cpu + r.kids)} % over ${f1(secs)} s`,
    );
    return r;
  });
  if (!rows.length) {
    console.log("bench-idle: no agent was sampled to the end");
    return 1;
  }
  const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
  const rssMax = Math.max(...rows.map((r) => r.rssMax));
  const total = rows.map((r) => r.cpu + r.kids);
  const pass = rssMax <= TARGET_RSS_MB && Math.max(...total) <= TARGET_CPU_PCT;
  console.log(
    `bench-idle: agents=${rows.length} seconds=${f1(mean(rows.map((r) => r.secs)))} rss_mb_mean=${f1(mean(rows.map((r) => r.rssMean)))} rss_mb_max=${f1(rssMax)} ` +
      `cpu_pct_mean=${f2(mean(rows.map((r) => r.cpu)))} children_pct_mean=${f2(mean(rows.map((r) => r.kids)))} total_pct_max=${f2(Math.max(...total))} ` +
      `target=rss<=${TARGET_RSS_MB},total<=${TARGET_CPU_PCT} ${pass ? "met" : "missed"}`,
  );
  return rows.length === watched.length ? 0 : 1;
}

/** CPU of this process and of its children per call of `f`, run `perSec` times a second. */
async function piece(name: string, f: () => Promise<unknown>, perSec: number, secs: number, livePid?: () => number | null): Promise<void> {
  const hz = clkTck();
  const selfStat = () => statFields(process.pid)!;
  const live = () => {
    const pid = livePid?.();
    const g = pid ? statFields(pid) : null;
    return g ? own(g) : 0;
  };
  await f();
  await f();
  const c0 = process.cpuUsage();
  const k0 = reaped(selfStat()) + live();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < secs * 1000) {
    await f();
    n++;
    const wait = t0 + (n * 1000) / perSec - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const c = process.cpuUsage(c0);
  const kids = ((reaped(selfStat()) + live() - k0) / hz) * 1000;
  const el = (performance.now() - t0) / 1000;
  const ownMs = (c.user + c.system) / 1000;
  console.log(`${name.padEnd(46)} ${String(n).padStart(4)} calls: ${f2(ownMs / n)} ms + ${f2(kids / n)} ms in children per call = ${f2(ownMs / el / 10)} % + ${f2(kids / el / 10)} % of a core at ${perSec}/s`);
}

async function pieces(secs: number): Promise<number> {
  const { VipDriver } = await import("../../agent/resources/vip.ts");
  const { hostSource, readHost, readTimeSync, execProgram } = await import("../../agent/hw/host.ts");
  const quiet = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
  console.log(`each piece alone in this process (pid ${process.pid}), ${secs} s each; the idle line is this process doing nothing: subtract its % of a core from the pieces' own %`);
  await piece("idle (a timer 4 times a second)", async () => {}, 4, secs);
  const vip = new VipDriver({ address: "127.0.0.1/8", iface: "lo", log: quiet });
  await piece("VIP held(), os.networkInterfaces", () => vip.held(), 4, secs);
  const vipIp = new VipDriver({ address: "127.0.0.1/8", iface: "lo", log: quiet, interfaces: () => ({}) });
  await piece("VIP held(), ip -j addr show (the old way)", () => vipIp.held(), 4, secs);
  const source = hostSource();
  await piece("host: cpu, memory, filesystems (no time sync)", () => readHost({ source, timeSync: { state: "unknown", source: null, offsetSeconds: null, detail: "" } }), 1, secs);
  await piece("host: time sync (chronyc or timedatectl)", () => readTimeSync(execProgram, 2000), 1, secs);
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/ipmi_sim")) {
    console.log("ipmitool: skipped (needs root and OpenIPMI's ipmi_sim)");
    return 0;
  }
  const { BmcHarness } = await import("../broker/bmc-harness.ts");
  const { Ipmi } = await import("../../agent/hw/ipmi.ts");
  const { IpmiShell } = await import("../../agent/hw/ipmi-shell.ts");
  const { ipmitoolHome } = await import("../../agent/runtime/watch-poll.ts");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const h = await BmcHarness.start([{ name: "bench", host: "127.0.5.1" }]);
  const home = ipmitoolHome(mkdtempSync("/tmp/bollard-bench-ipmitool-"), quiet)!;
  try {
    const one = new Ipmi(h.config("bench", { cipher: 3 }), { log: quiet, home });
    await piece("ipmitool sensor, one process per call", () => one.sensors(), 1, secs);
    const shell = new IpmiShell(one, { log: quiet });
    await piece("ipmitool sensor, in an ipmitool shell", () => shell.sensors(), 1, secs, () => shell.pid());
    shell.close();
  } finally {
    await h.stop();
    rmSync(home, { recursive: true, force: true });
  }
  return 0;
}

const piecesArg = process.argv.indexOf("--pieces");
const run = piecesArg >= 0 ? () => {
  const i = process.argv.indexOf("--seconds");
  return pieces(i > 0 ? Number(process.argv[i + 1]) || 15 : 15);
} : main;

run().then((c) => process.exit(c), (e: unknown) => {
  console.error(`bench-idle: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
