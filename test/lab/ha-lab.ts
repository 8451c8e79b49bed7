// Helpers for the data-path lab tests and make bench-failover: drive the lab CLI, read each
// node's status and event log, run a writer through the VIP, and count what was lost.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as assert from "uvu/assert";

const run = promisify(execFile);
export const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const LAB = join(REPO, "test/lab/lab");
export const S = process.env.LAB_STATE ?? "/run/bollard-lab";
export const NODES = ["node1", "node2", "node3"];
export const VIP = "198.18.0.10";

export async function lab(...args: string[]): Promise<string> {
  const r = await run(LAB, args, { timeout: 120_000, maxBuffer: 16 << 20 });
  return r.stdout;
}

export async function sh(ns: string, cmd: string, timeoutMs = 10_000): Promise<string> {
  const r = await run("ip", ["netns", "exec", ns, "bash", "-c", cmd], { timeout: timeoutMs, maxBuffer: 16 << 20 }).catch((e) => ({ stdout: String(e.stdout ?? "") }));
  return r.stdout;
}

export interface NodeStatus {
  role: string;
  leader: string | null;
  term: number;
  quorum: boolean;
  selfFenced: boolean;
  assignments: Record<string, string>;
  flags: Record<string, string>;
  ha: any;
}

/**
 * The node's status from its agent's control socket (GET /status, agent/runtime/control.ts): a few
 * ms, where `bollard status --json` starts a Node process that takes seconds on a loaded
 * 2-core machine (it timed out and made a healthy cluster look unhealthy for 20 s). null when
 * the agent does not answer within `timeoutMs`.
 */
export function status(node: string, timeoutMs = 2000): Promise<NodeStatus | null> {
  return new Promise((resolve) => {
    const req = request({ socketPath: join(S, node, "state", "agent.sock"), path: "/status", method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          if (res.statusCode !== 200) return resolve(null);
          const j = JSON.parse(body);
          const v = j.view;
          resolve({ role: v.role, leader: v.leader, term: v.term, quorum: v.quorum, selfFenced: v.selfFenced, assignments: v.committed.assignments, flags: v.committed.flags, ha: j.ha });
        } catch {
          resolve(null);
        }
      });
      res.on("error", () => resolve(null));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(null));
    req.end();
  });
}

export async function until<T>(what: string, ms: number, f: () => Promise<T | null | undefined | false>, everyMs = 200): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The service's holder and the node every live agent agrees leads, once the data path is healthy. */
export async function healthy(svc: "mysql" | "redis", nodes = NODES): Promise<{ leader: string; holder: string } | null> {
  // not nodes.map(status): map's index would become status()'s timeout (0-2 ms), and a node
  // answering in over 1 ms read as "no status" (bench-failover stalled 80 s on it)
  const st = await Promise.all(nodes.map((n) => status(n)));
  if (st.some((s) => !s)) return null;
  const leader = st.find((s) => s!.role === "leader");
  if (!leader) return null;
  const holder = leader.assignments[svc];
  if (!holder) return null;
  for (const [i, s] of st.entries()) {
    // A replica that diverged holds itself out until it is re-cloned (docs/ha.md): it is
    // not part of a healthy data path, and not waited for.
    if (nodes[i] !== holder && s!.ha?.heldOut?.[svc]) continue;
    const f = s!.ha?.facts?.[svc];
    if (!f?.up) return null;
    if (nodes[i] === holder ? !(f.writable && f.role === "primary") : !(f.role === "replica" && f.source === holder)) return null;
    if (s!.ha?.facts?.portal?.[svc] !== holder) return null;
  }
  if (svc === "mysql" && !st[nodes.indexOf(holder)]!.ha?.facts?.vip) return null;
  return { leader: leader.role === "leader" ? nodes[st.indexOf(leader)] : "", holder };
}

/**
 * Each case or run fails over on purpose, and anti-flapping would hold the next one back:
 * acknowledge an unacknowledged failover on the leader. true: there was one (the data path
 * is not settled yet: ask again).
 */
export async function ackLastFailover(leader: string, st: NodeStatus): Promise<boolean> {
  for (const svc of ["mysql", "redis"]) {
    if (st.flags[`failover:${svc}`] && !(Number(st.flags[`ack:${svc}`]) >= Number(st.flags[`failover:${svc}`]))) {
      await bollard(leader, `ha ack ${svc}`).catch(() => undefined);
      return true;
    }
  }
  return false;
}

/** Events of a node's agent (its events.jsonl), newest last. */
/** Event lines that did not parse (cut by a power-off), for a test to print. */
export let tornEventLines = 0;

export function events(node: string): { ts: string; kind: string; detail: string }[] {
  const f = join(S, node, "state", "events.jsonl");
  if (!existsSync(f)) return [];
  // a line cut by a power-off (the lab kills the node mid-append) is skipped, not fatal: the
  // campaign once died here, after a schedule, without its summary line
  const out: { ts: string; kind: string; detail: string }[] = [];
  for (const l of readFileSync(f, "utf8").split("\n")) {
    if (!l.trim()) continue;
    try { out.push(JSON.parse(l)); } catch { tornEventLines++; }
  }
  return out;
}

/** The writers' record directories, removed when the test process exits (they are read after stop()). */
const writerDirs: string[] = [];
process.on("exit", () => { for (const d of writerDirs) rmSync(d, { recursive: true, force: true }); });

export class Writer {
  readonly dir = mkdtempSync(join(tmpdir(), "bollard-writer-"));
  constructor() {
    writerDirs.push(this.dir);
  }
  private p: ChildProcess | null = null;

  /** mysqlAt, redisAt: other addresses than the VIP's portal ports (make bench-peers: a peer's
   * VIP on MariaDB's own port); redisSentinels: find the Redis master through Sentinel. */
  start(opts: { mysql?: boolean; redis?: boolean; redisWait?: boolean; sample?: boolean; mysqlAt?: string; redisAt?: string; redisSentinels?: string }): void {
    const args = ["netns", "exec", "client", process.execPath, "--import", "tsx", join(REPO, "test/lab/writer.ts"), "--out", this.dir, "--password-file", join(S, "secrets/mysql-app.pass")];
    if (opts.mysql) args.push("--mysql", opts.mysqlAt ?? `${VIP}:3307`);
    if (opts.redis) args.push("--redis", opts.redisAt ?? `${VIP}:6380`);
    if (opts.redis && opts.redisSentinels) args.push("--redis-sentinels", opts.redisSentinels);
    if (opts.redisWait) args.push("--redis-wait");
    if (opts.sample) args.push("--sample", NODES.map((n) => `${n}=${dataIp(n)}`).join(","));
    this.p = spawn("ip", args, { stdio: "ignore", cwd: REPO });
  }

  private stoppedAt: number | null = null;

  async stop(): Promise<void> {
    this.stoppedAt ??= Date.now();
    if (!this.p || this.p.exitCode !== null) return;
    this.p.kill("SIGTERM");
    await new Promise((r) => this.p!.once("exit", r));
  }

  acked(svc: "mysql" | "redis"): { id: number; at: number }[] {
    const f = join(this.dir, `${svc}.acked`);
    if (!existsSync(f)) return [];
    return readFileSync(f, "utf8").trim().split("\n").filter(Boolean).map((l) => { const [id, at] = l.split(" ").map(Number); return { id, at }; });
  }

  /** Samples (writer --sample) in which two nodes' MySQL, or two nodes' Redis, would take writes. */
  twoWritable(): string[] {
    const f = join(this.dir, "samples");
    if (!existsSync(f)) return [];
    return readFileSync(f, "utf8").trim().split("\n").filter((l) => /mysql=\S*,\S*|redis=\S*,\S*/.test(l));
  }

  /** How many samples were taken (a sampler that did not run proves nothing). */
  samples(): number {
    const f = join(this.dir, "samples");
    return existsSync(f) ? readFileSync(f, "utf8").trim().split("\n").filter(Boolean).length : 0;
  }

  /** What the writer was told between `from` and `to` (wall ms): "+N ms message" per change of message. */
  errors(svc: "mysql" | "redis", from: number, to: number): string[] {
    const f = join(this.dir, `${svc}.errors`);
    if (!existsSync(f)) return [];
    const out: string[] = [];
    let last = "";
    for (const l of readFileSync(f, "utf8").trim().split("\n")) {
      const at = Number(l.slice(0, l.indexOf(" "))), msg = l.slice(l.indexOf(" ") + 1).slice(0, 80);
      if (at < from || at > to || msg === last) continue;
      out.push(`+${at - from} ms ${msg}`);
      last = msg;
    }
    return out;
  }

  /** The longest pause between two acknowledged writes from `since` (wall ms) until the writer stopped. */
  longestPause(svc: "mysql" | "redis", since: number): { ms: number; from: number } {
    const a = this.acked(svc).filter((x) => x.at >= since);
    let best = { ms: 0, from: since };
    let prev = since;
    for (const x of [...a, { at: this.stoppedAt ?? Date.now() }]) { if (x.at - prev > best.ms) best = { ms: x.at - prev, from: prev }; prev = x.at; }
    return best;
  }

  /** Wall ms of the first MySQL login through the VIP after `since` (the VIP and a portal answered). */
  connectAfter(since: number): number | null {
    const f = join(this.dir, "mysql.connects");
    if (!existsSync(f)) return null;
    return readFileSync(f, "utf8").trim().split("\n").map(Number).find((t) => t > since) ?? null;
  }

  /** The first write acknowledged once the fault was complete, and how long after it began. */
  resumed(svc: "mysql" | "redis", fault: { start: number; end: number }): { afterMs: number; at: number } | null {
    const next = this.acked(svc).find((x) => x.at > fault.end);
    return next ? { afterMs: next.at - fault.start, at: next.at } : null;
  }

  /** The longest pause between two acknowledged writes after `since` (wall ms), and when it ended. */
  gapAfter(svc: "mysql" | "redis", since: number): { gapMs: number; resumedAt: number } | null {
    const a = this.acked(svc);
    const next = a.find((x) => x.at > since);
    if (!next) return null;
    return { gapMs: next.at - since, resumedAt: next.at };
  }
}

/** Acknowledged MySQL writes missing on `node` (the new primary). */
export async function lostMysql(w: Writer, node: string): Promise<number[]> {
  const have = new Set((await sh(node, `mariadb -S ${S}/${node}/mysql/mysqld.sock -u root -N -e 'SELECT id FROM fms.writes'`, 20_000)).split("\n").filter(Boolean).map(Number));
  return w.acked("mysql").map((x) => x.id).filter((id) => !have.has(id));
}

/** Acknowledged Redis writes missing on `node`, with the time each was acknowledged. */
export async function lostRedis(w: Writer, node: string, dataIp: string): Promise<{ id: number; at: number }[]> {
  const keys = new Set((await sh(node, `redis-cli -h ${dataIp} --scan --pattern 'w:*'`, 20_000)).split("\n").filter(Boolean));
  return w.acked("redis").filter((x) => !keys.has(`w:${x.id}`));
}

export const dataIp = (n: string) => `198.18.0.1${n.slice(-1)}`;

/** `bollard ARGS...` on NODE, as an operator would run it; throws with its output when it fails. */
export async function bollard(node: string, args: string, timeoutMs = 60_000): Promise<string> {
  const r = await run("ip", ["netns", "exec", node, "node", `${REPO}/dist/bollard.js`, "--config", `${S}/${node}/bollard.yaml`, ...args.split(" ")], { timeout: timeoutMs, maxBuffer: 16 << 20 })
    .catch((e) => { throw new Error(`bollard ${args} on ${node}: ${String(e.stdout ?? "")}${String(e.stderr ?? "")}${e.message}`); });
  return r.stdout;
}

/** SQL on NODE's own server through its socket, as root. */
export const sqlLocal = (node: string, sql: string) => sh(node, `mariadb -S ${S}/${node}/mysql/mysqld.sock -u root -N -e ${JSON.stringify(sql)} 2>&1`, 20_000);

/**
 * When the lab's events.log says a fault happened (the first line after `sinceIso` matching
 * `re`), as wall ms: for a power off, the moment the kills started ("power off by bmc (N ms)"
 * is written once every process of the node is dead, N ms after they started).
 */
export function faultAt(sinceIso: string, re: RegExp): { start: number; end: number } | null {
  const f = join(S, "events.log");
  if (!existsSync(f)) return null;
  for (const line of readFileSync(f, "utf8").split("\n")) {
    const i = line.indexOf(" ");
    if (i < 0 || line.slice(0, i) < sinceIso || !re.test(line.slice(i + 1))) continue;
    const end = Date.parse(line.slice(0, i));
    const took = /\((\d+) ms\)/.exec(line)?.[1];
    return { start: end - Number(took ?? 0), end };
  }
  return null;
}

const SWITCHES = ["switchA", "switchB"];
const powered = (n: string) => { try { return execFileSync("cat", [`${S}/${n}/power`], { encoding: "utf8" }).trim() === "1"; } catch { return false; } };

/**
 * Undo every fault a case may leave: power, partitions, BMCs, switch ports, SNMP blocks, a
 * shaped link (tc), a server hung (SIGSTOP) or stopped, an agent stalled.
 */
export async function undoFaults(): Promise<void> {
  for (const n of NODES) {
    await lab("heal", n).catch(() => undefined);
    await lab("bmc", n, "up").catch(() => undefined);
    // a node fenced at the switches stays cut off until its ports are up again (unfence)
    for (const sw of SWITCHES) await lab("link", sw, n, "up").catch(() => undefined);
    await sh(n, "tc qdisc del dev bond0 root 2>/dev/null; true");
    if (!powered(n)) { await lab("power", n, "on").catch(() => undefined); continue; }
    await lab("unstall", n).catch(() => undefined);
    for (const svc of ["mariadb", "redis", "nginx"]) await lab("service", n, svc, "resume").catch(() => undefined);
    for (const svc of ["mariadb", "redis"]) await lab("service", n, svc, "start").catch(() => undefined);
  }
  for (const sw of SWITCHES) await sh(sw, "while iptables -D INPUT -p udp --dport 161 -j DROP 2>/dev/null; do :; done; true");
}

/**
 * Back to three healthy nodes, no fence flag, every failover acknowledged. A node held out for
 * re-cloning, or a cluster a failed case left beyond repair, is rebuilt (the lab's re-cloning),
 * and `figures` says so: a rebuild is never silent.
 */
export async function restore(figures: string[]): Promise<{ leader: string; holder: string }> {
  await undoFaults();
  const ready = () => until("a healthy MySQL and Redis with three nodes", 90_000, async () => {
    const m = await healthy("mysql");
    const r = await healthy("redis");
    if (!m || !r) return null;
    // A held-out node needs re-cloning. The minority of the no-fence-path case usually holds a
    // transaction that was written to its binlog but never acknowledged (semi-sync AFTER_SYNC,
    // its replicas cut off) when it fenced itself: it comes back diverged, and the next case
    // would have no replica left to acknowledge commits. The lab's re-cloning is a rebuild.
    for (const n of NODES) {
      const held = (await status(n))?.ha?.heldOut?.mysql;
      if (held) return { leader: "", holder: "", reclone: `${n}: ${held}` };
    }
    const st = await status(m.leader);
    if (!st || Object.keys(st.flags).some((k) => k.startsWith("fenc"))) return null;
    if (await ackLastFailover(m.leader, st)) return null;
    return { ...m, reclone: "" };
  }, 300);
  try {
    const r = await ready();
    if (!r.reclone) return r;
    figures.push(`restore: REBUILT the lab to re-clone ${r.reclone}`);
    await lab("down");
    await lab("up");
    return await ready();
  } catch (e) {
    figures.push(`restore: REBUILT the lab (${(e as Error).message.slice(0, 160)})`);
    await lab("down");
    await lab("up");
    return ready();
  }
}

/** Every live node's copy of the writers' data: MySQL's table as a count and checksum, Redis's keys. */
export async function sameData(nodes = NODES): Promise<{ same: boolean; detail: string }> {
  const my = await Promise.all(nodes.map((n) => sqlLocal(n, "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT(id, '#', at))), 0) FROM fms.writes").then((x) => x.trim())));
  const rd = await Promise.all(nodes.map(async (n) => {
    const keys = (await sh(n, `redis-cli -h ${dataIp(n)} --scan --pattern 'w:*'`, 20_000)).split("\n").filter(Boolean).sort();
    return `${keys.length}:${keys.join(",").length}`;
  }));
  const same = my.every((x) => x === my[0]) && rd.every((x) => x === rd[0]);
  return { same, detail: nodes.map((n, i) => `${n} mysql ${my[i]!.replace(/\s+/g, "/")} redis ${rd[i]}`).join("; ") };
}

/** Until every live node has applied the primary's last transaction (replicas caught up). */
export async function caughtUp(holder: string, nodes = NODES): Promise<void> {
  await until("the replicas caught up with the primary", 30_000, async () => {
    const want = (await sqlLocal(holder, "SELECT @@GLOBAL.gtid_binlog_pos")).trim();
    const got = await Promise.all(nodes.map((n) => sqlLocal(n, "SELECT @@GLOBAL.gtid_slave_pos, @@GLOBAL.gtid_binlog_pos").then((x) => x.trim())));
    return got.every((g) => g.split(/\s+/).includes(want)) || null;
  }, 300);
}

export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Run {
  holder: string;
  leader: string;
  w: Writer;
  t0: string;
  at: number;
}

/** Healthy cluster, writers and sampler running, writes flowing. */
export async function startWriters(figures: string[] = []): Promise<Run> {
  const { holder, leader } = await restore(figures);
  const w = new Writer();
  w.start({ mysql: true, redis: true, redisWait: true, sample: true });
  await until("writes flowing", 30_000, async () => w.acked("mysql").length > 20 && w.acked("redis").length > 20);
  return { holder, leader, w, t0: new Date(Date.now() - 50).toISOString(), at: Date.now() };
}

/**
 * After the fault: the service back on three nodes, writers stopped, and the checks every case
 * makes. Returns the pauses (ms) for the figures.
 */
export async function checkAfter(figures: string[], name: string, r: Run, o: { nodes?: string[]; heal?: () => Promise<void> } = {}): Promise<{ mysqlMs: number; redisMs: number; holder: string }> {
  const nodes = o.nodes ?? NODES;
  const m = await until("MySQL healthy again", 90_000, () => healthy("mysql", nodes), 300);
  await until("Redis healthy again", 60_000, () => healthy("redis", nodes), 300);
  await until("MySQL writes through the VIP again", 30_000, async () => r.w.acked("mysql").some((x) => x.at > Date.now() - 1000));
  await until("Redis writes through the VIP again", 30_000, async () => r.w.acked("redis").some((x) => x.at > Date.now() - 1000));
  await pause(500);
  await r.w.stop();
  const lostM = await lostMysql(r.w, m.holder);
  const rh = (await healthy("redis", nodes))!.holder;
  const lostR = await lostRedis(r.w, rh, dataIp(rh));
  const pm = r.w.longestPause("mysql", r.at), pr = r.w.longestPause("redis", r.at);
  figures.push(`${name}: mysql ${r.holder} -> ${m.holder}, writes paused ${pm.ms} ms (${r.w.acked("mysql").length} acked, ${lostM.length} lost); redis -> ${rh}, paused ${pr.ms} ms (${r.w.acked("redis").length} acked, ${lostR.length} lost); ${r.w.samples()} samples`);
  assert.equal(lostM, [], `${name}: no acknowledged MySQL write is lost`);
  assert.equal(lostR.map((x) => x.id), [], `${name}: no Redis write a replica confirmed (WAIT 1) is lost`);
  assert.ok(r.w.samples() > 20, `${name}: the sampler ran`);
  assert.equal(r.w.twoWritable(), [], `${name}: never two writable primaries at once`);
  await o.heal?.();
  await caughtUp(m.holder, nodes);
  const same = await until("the same data on every node", 30_000, async () => { const d = await sameData(nodes); return d.same ? d : null; }, 500)
    .catch(async () => sameData(nodes));
  assert.ok(same.same, `${name}: every node holds the same data: ${same.detail}`);
  return { mysqlMs: pm.ms, redisMs: pr.ms, holder: m.holder };
}

/** `until`, whose timeout error carries every node's events since `t0` (what went wrong). */
export async function awaitOr<T>(t0: string, what: string, ms: number, f: () => Promise<T | null | undefined | false>): Promise<T> {
  try {
    return await until(what, ms, f, 300);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${timeline(t0).filter((l) => !/ (commit|propose) /.test(l)).join("\n")}`);
  }
}

/** The leader's (or every node's) events since `t0`, as "node kind detail" lines. */
export function timeline(t0: string, nodes = NODES): string[] {
  return nodes.flatMap((n) => events(n).filter((e) => e.ts >= t0).map((e) => `${e.ts.slice(11, 23)} ${n} ${e.kind} ${e.detail}`)).sort();
}

/** A lab suite's frame, as root only: a fresh lab before its cases (the bundle built if missing),
 *  down after them, then its figures printed. */
export function labFrame(s: { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void }, figures: string[]): void {
  const root = process.getuid?.() === 0;
  s.before(async () => {
    if (!root) return;
    if (!existsSync(`${REPO}/dist/bollard.js`)) execFileSync("node", ["build.mjs"], { cwd: REPO });
    await lab("down");
    await lab("up");
  });
  s.after(async () => {
    if (!root) return;
    await lab("down");
    console.log(`figures:\n  ${figures.join("\n  ")}`);
  });
}
