// Helpers of the lab tests that run the real agent (cluster.test.ts, join.test.ts): drive
// test/lab/lab, read a node's `bollard status --json` (through `lab exec NODE bollard ...`,
// as an operator would) or, where a figure needs it, straight from its control socket; wait
// with timeouts; read the agents' JSON logs and the lab's events.log; print figures.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
export const LAB = `${REPO}/test/lab/lab`;
export const BUNDLE = `${REPO}/dist/bollard.js`;
export const NODES = ["node1", "node2", "node3"] as const;
export type NodeName = (typeof NODES)[number];

/** One lab: its state dir, the environment every `lab` call gets, and its mode. */
export interface Lab {
  S: string;
  env: NodeJS.ProcessEnv;
  loopback: boolean;
}

export function labContext(o: { state?: string; loopback?: boolean; env?: Record<string, string> } = {}): Lab {
  const S = o.state ?? process.env.LAB_STATE ?? "/run/bollard-lab";
  const env: NodeJS.ProcessEnv = { ...process.env, LAB_STATE: S, ...o.env };
  delete env.LAB_NO_AGENT;
  delete env.LAB_AGENT_CMD;
  env.LAB_MODE = o.loopback ? "loopback" : "netns";
  return { S, env, loopback: !!o.loopback };
}

export interface Run {
  code: number;
  out: string;
  err: string;
  ms: number;
}
const text = (r: Run) => `exit ${r.code}\n${r.out}${r.err}`;

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Run {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { env, encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 << 20 });
  return { code: r.status ?? -1, out: r.stdout ?? "", err: (r.stderr ?? "") + (r.error ? String(r.error) : ""), ms: performance.now() - t0 };
}

export function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let out = "";
    let err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    c.on("error", (e) => (err += String(e)));
    c.on("close", (code) => resolve({ code: code ?? -1, out, err, ms: performance.now() - t0 }));
  });
}

/** `test/lab/lab ARGS...`, synchronously. */
export const lab = (l: Lab, ...args: string[]): Run => run(LAB, args, l.env);
/** The same, and fails with the command's output if it exits non-zero. */
export function labOk(l: Lab, ...args: string[]): Run {
  const r = lab(l, ...args);
  if (r.code !== 0) throw new Error(`lab ${args.join(" ")}: ${text(r)}`);
  return r;
}

// ---- status ------------------------------------------------------------------------------

export interface Member {
  name: string;
  bus: string;
  pass?: string;
}
export interface Register {
  epoch: number;
  term: number;
  members: Member[];
  assignments: Record<string, string>;
}
/** The part of agent/cluster/view.ts NodeView the tests read. */
export interface View {
  node: string;
  role: "follower" | "candidate" | "leader";
  term: number;
  leader: string | null;
  quorum: boolean;
  lease: boolean;
  selfFenced: boolean;
  member: boolean;
  config: Register;
  committed: Register;
  peers: { name: string; alive: boolean }[];
}
export interface Status {
  /** the agent answered (false: the last status file it wrote, or nothing) */
  live: boolean;
  view: View | null;
  why?: string;
}

/** `lab exec NODE bollard status --json`: the operator's way, ~0.5 s a call. */
export async function status(l: Lab, node: string): Promise<Status> {
  const r = await runAsync(LAB, ["exec", node, "bollard", "status", "--json"], l.env, 15_000);
  try {
    const j = JSON.parse(r.out);
    return { live: j.live === true, view: j.status?.view ?? null, why: j.why ?? j.error };
  } catch {
    return { live: false, view: null, why: `no JSON from bollard status on ${node}: ${text(r)}` };
  }
}

/** GET /status on the node's control socket (agent/runtime/control.ts): ~5 ms, for figures. */
export function statusFast(l: Lab, node: string, timeoutMs = 1000): Promise<View | null> {
  return new Promise((resolve) => {
    const req = request({ socketPath: `${l.S}/${node}/state/agent.sock`, path: "/status", method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(body).view as View) : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(null));
    req.end();
  });
}

export async function statuses(l: Lab, nodes: readonly string[] = NODES): Promise<Record<string, Status>> {
  const all = await Promise.all(nodes.map((n) => status(l, n)));
  return Object.fromEntries(nodes.map((n, i) => [n, all[i]!]));
}

/** One line per node: role, term, leader, quorum; for failure messages and logs. */
export function describe(st: Record<string, Status>): string {
  return Object.entries(st)
    .map(([n, s]) => {
      const v = s.view;
      if (!v) return `${n}: no status (${s.why ?? "?"})`;
      return `${n}: ${s.live ? "" : "(not live) "}${v.role} term ${v.term} leader ${v.leader ?? "none"} quorum ${v.quorum}` +
        ` selfFenced ${v.selfFenced} epoch ${v.committed.epoch}`;
    })
    .join("; ");
}

/**
 * The leader every one of `nodes` follows, if they agree: each live, exactly one of them
 * leader, every one naming it leader in the same term, each with quorum.
 */
export function agreedLeader(st: Record<string, Status>, nodes: readonly string[]): { leader: string; term: number } | null {
  const views = nodes.map((n) => (st[n]?.live ? st[n]!.view : null));
  if (views.some((v) => !v)) return null;
  const leaders = views.filter((v) => v!.role === "leader");
  if (leaders.length !== 1) return null;
  const { node: leader, term } = leaders[0]!;
  return views.every((v) => v!.leader === leader && v!.term === term && v!.quorum && !v!.selfFenced) ? { leader, term } : null;
}

/** Waits until `nodes` agree on one leader (agreedLeader); the statuses it saw last. */
export async function waitAgreed(l: Lab, nodes: readonly string[], timeoutMs: number) {
  let last: Record<string, Status> = {};
  const { value, ms } = await until(`${nodes.join(", ")} to agree on one leader`, timeoutMs, async () => {
    last = await statuses(l, nodes);
    return agreedLeader(last, nodes);
  }, 200, () => describe(last));
  return { ...value, ms, st: last };
}

// ---- waiting ----------------------------------------------------------------------------

/**
 * Calls `check` every `everyMs` until it returns a truthy value; fails after `timeoutMs`
 * saying what it waited for and, with `seen`, what it saw last.
 */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  everyMs = 100,
  seen?: () => string,
): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const v = await check();
    if (v) return { value: v, ms: performance.now() - t0 };
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms${seen ? `; last seen: ${seen()}` : ""}`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- logs -------------------------------------------------------------------------------

export interface LogLine {
  ts: string;
  level: string;
  ns: string;
  msg: string;
  [k: string]: unknown;
}

export const read = (p: string) => (existsSync(p) ? readFileSync(p, "utf8") : "");

/** The node's agent.log (JSON lines; anything else, e.g. a crash trace, is skipped). */
export function agentLog(l: Lab, node: string, since = ""): LogLine[] {
  const out: LogLine[] = [];
  for (const line of read(`${l.S}/${node}/agent.log`).split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line) as LogLine;
      if (typeof j.ts === "string" && j.ts >= since) out.push(j);
    } catch {
      /* a line cut by a kill -9 */
    }
  }
  return out;
}

export const findLog = (l: Lab, node: string, re: RegExp, since = "") => agentLog(l, node, since).find((j) => re.test(j.msg));

/** $S/events.log: "ISO-TIME what" per fault, power action and inverse. */
export function labEvents(l: Lab): { ts: string; what: string }[] {
  return read(`${l.S}/events.log`).split("\n").filter(Boolean).map((line) => {
    const i = line.indexOf(" ");
    return { ts: line.slice(0, i), what: line.slice(i + 1) };
  });
}

export const nowIso = () => new Date().toISOString();
export const msBetween = (a: string, b: string) => Date.parse(b) - Date.parse(a);

// ---- processes, set-up, figures -----------------------------------------------------------

/** Processes of a node in the lab in namespaces (ip netns pids). */
export const nsPids = (node: string) => run("ip", ["netns", "pids", node]).out.split("\n").filter(Boolean);
export const ping = (from: string, to: string) =>
  run("ip", ["netns", "exec", from, "ping", "-c", "1", "-W", "1", "-q", to]).code === 0;

export function skipReason(loopback = false): string | null {
  if (!loopback && process.getuid?.() !== 0) return "needs root (network namespaces)";
  const bins = loopback ? ["mosquitto"] : ["ipmi_sim", "sdrcomp", "ipmitool", "snmpd", "mosquitto", "mariadbd", "redis-server", "nginx", "socat"];
  for (const b of bins) if (run("sh", ["-c", `command -v ${b}`]).code !== 0) return `needs ${b} (make lab installs the lab's packages)`;
  if (!loopback && !existsSync("/usr/lib/nginx/modules/ngx_stream_module.so")) return "needs libnginx-mod-stream";
  if (!existsSync(BUNDLE) && !existsSync(`${REPO}/node_modules/esbuild`)) return "needs dist/bollard.js or esbuild to build it (make build)";
  return null;
}

/** The agent bundle: built with `node build.mjs` if it is missing. */
export function ensureBundle(): void {
  if (existsSync(BUNDLE)) return;
  const r = spawnSync(process.execPath, ["build.mjs"], { cwd: REPO, encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0 || !existsSync(BUNDLE)) throw new Error(`node build.mjs: exit ${r.status}\n${r.stdout}${r.stderr}`);
}

export const figures: string[] = [];
export function figure(line: string): void {
  figures.push(line);
  console.log(`  figure: ${line}`);
}
