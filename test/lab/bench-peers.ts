// make bench-peers RUNS=N: bollard against the tools users would pick instead, on the same lab,
// the same fault and the same writer (docs/ha.md "Peers"). For each peer, RUNS times: the lab
// up without bollard's agents (LAB_NO_AGENT=1), node1 the MariaDB primary and Redis master
// (test/lab/peers/topology.sh), the peer's daemons started in the nodes' namespaces by its
// script in test/lab/peers/, the writer of bench-failover (test/lab/writer.ts, in the client
// namespace) through the peer's address, node1 powered off through its BMC, then the time
// from the moment its processes started dying to the first acknowledged write, and every
// acknowledged write looked for on the new primary. bollard's RUNS come from one lab with its
// agents, as in bench-failover. One table, then one last line (test/lab/peers/stats.ts):
// peers: bollard_mysql_p50=... mha_p50=... ... lost_acked=bollard:0,mha:K,...
// PEERS=bollard,sentinel,keepalived,keepalived_v3,mha,pacemaker picks some (default: all).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { NODES, REPO, S, VIP, Writer, ackLastFailover, dataIp, faultAt, healthy, lab, lostMysql, lostRedis, sqlLocal, status, until } from "./ha-lab.ts";
import { breakdown, breakdownLine, eventsSince } from "./peers/breakdown.ts";
import { type PeerResult, type RunFigure, fmt, summaryLine, table } from "./peers/stats.ts";

const run = promisify(execFile);
const RUNS = Number(process.env.RUNS ?? 5);
const ALL = ["bollard", "sentinel", "keepalived", "keepalived_v3", "mha", "pacemaker"];
const WANT = (process.env.PEERS ?? ALL.join(",")).split(",");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** lab down; its final check-clean also lists other checkouts' processes waiting for the lab's
 * lock (their command lines name the lab): what counts here is that this lab is gone. */
async function down(): Promise<void> {
  await lab("down").catch((e) => { if (existsSync(`${S}/ledger`)) throw e; });
}
const nodeOf = (ip: string) => NODES.find((n) => dataIp(n) === ip.trim()) ?? "";

/** A peer script (test/lab/peers/NAME.sh ARGS...); its stdout, or it throws with its output. */
async function peer(script: string, ...args: string[]): Promise<string> {
  const r = await run(`${REPO}/test/lab/peers/${script}.sh`, args, { timeout: 120_000, maxBuffer: 16 << 20 })
    .catch((e) => { throw new Error(`${script}.sh ${args.join(" ")}: ${String(e.stdout ?? "")}${String(e.stderr ?? "")}`.trim()); });
  return r.stdout;
}

interface Peer {
  key: string;
  what: string;
  /** topology.sh's arguments */
  topology?: string[];
  /** after the lab is up and the topology set: start the peer's daemons */
  start(): Promise<void>;
  stop(): Promise<void>;
  writer: Parameters<Writer["start"]>[0];
  /** "mysql" | "redis": resumed writes; "vip": the first login through the VIP */
  measure: "mysql" | "redis" | "vip";
  /** the node that holds the service after the failover ("" when none) */
  newPrimary?(): Promise<string>;
}

const SENTINELS = NODES.map((n) => `${dataIp(n)}:26379`).join(",");
const PEERS: Peer[] = [
  {
    key: "sentinel", what: "Redis through Sentinel discovery",
    start: async () => { await peer("sentinel", "start"); }, stop: async () => { await peer("sentinel", "stop"); },
    writer: { redis: true, redisSentinels: SENTINELS }, measure: "redis",
    newPrimary: async () => nodeOf(await peer("sentinel", "master").catch(() => "")),
  },
  {
    key: "keepalived_vip", what: "login through the VIP (VRRPv2, advert_int 1)",
    start: async () => { await peer("keepalived", "start", "1", "2"); }, stop: async () => { await peer("keepalived", "stop"); },
    writer: { mysql: true, mysqlAt: `${VIP}:3306` }, measure: "vip",
  },
  {
    key: "keepalived_v3", what: "login through the VIP (VRRPv3, advert_int 0.1)",
    start: async () => { await peer("keepalived", "start", "0.1", "3"); }, stop: async () => { await peer("keepalived", "stop"); },
    writer: { mysql: true, mysqlAt: `${VIP}:3306` }, measure: "vip",
  },
  {
    key: "mha", what: "MariaDB through MHA's VIP (semi-sync)",
    start: async () => { await peer("mha", "start"); }, stop: async () => { await peer("mha", "stop"); },
    writer: { mysql: true, mysqlAt: `${VIP}:3306` }, measure: "mysql",
    newPrimary: async () => (await peer("mha", "holder").catch(() => "")).trim(),
  },
  {
    key: "pacemaker", what: "MariaDB through IPaddr2 (promotable, fence_ipmilan)",
    start: async () => { await peer("pacemaker", "start"); }, stop: async () => { await peer("pacemaker", "stop"); },
    writer: { mysql: true, mysqlAt: `${VIP}:3306` }, measure: "mysql",
    newPrimary: async () => (await peer("pacemaker", "holder").catch(() => "")).trim(),
  },
];
const peerKey = (name: string) => (name === "keepalived" ? "keepalived_vip" : name);

/** One power-off of node1 under a peer. */
async function peerRun(p: Peer, i: number): Promise<RunFigure> {
  await down();
  process.env.LAB_NO_AGENT = "1";
  await lab("up");
  await peer("topology", ...(p.topology ?? []));
  const w = new Writer();
  try {
    await p.start();
    w.start(p.writer);
    const svc = p.measure === "redis" ? "redis" : "mysql";
    await until("writes flowing", 30_000, async () => w.acked(svc).length > 10);
    const t0 = new Date(Date.now() - 50).toISOString();
    await lab("power", "node1", "off");
    const off = await until("the power-off in events.log", 10_000, async () => faultAt(t0, /node1 power off by bmc/));
    let seconds = NaN;
    let note = "";
    if (p.measure === "vip") {
      const at = await until("a login through the VIP", 30_000, async () => w.connectAfter(off.end), 100).catch(() => null);
      if (at) seconds = (at - off.start) / 1000; else note = "no login through the VIP within 30 s";
    } else {
      const m = await until(`${svc} writes back`, 60_000, async () => w.resumed(svc, off), 100).catch(() => null);
      if (m) seconds = m.afterMs / 1000; else note = `no acknowledged ${svc} write within 60 s`;
    }
    await sleep(500);
    await w.stop();
    let lost: number | null = null;
    if (p.newPrimary) {
      const np = await p.newPrimary();
      if (/\s/.test(np)) throw new Error(`more than one new primary: ${np.split(/\s+/).join(", ")}`);
      if (np && np !== "node1" && svc === "redis") lost = (await lostRedis(w, np, dataIp(np))).length;
      else if (np && np !== "node1") {
        // as lostMysql, but a query that fails is said, not read as an empty table
        const out = await sqlLocal(np, "SELECT id FROM fms.writes");
        const ids = out.split("\n").filter(Boolean);
        if (ids.every((x) => /^\d+$/.test(x))) { const have = new Set(ids.map(Number)); lost = w.acked("mysql").filter((x) => !have.has(x.id)).length; note = `${note} ${ids.length} rows on ${np}, ${w.acked("mysql").length} acked`; }
        else note = `${note} lost-write check failed on ${np}: ${out.slice(0, 160)}`;
      }
      else note ||= "no new primary to check";
      note = `${note} new primary ${np || "-"}`.trim();
    }
    return { run: i, seconds, lost, note };
  } finally {
    await w.stop();
    // BENCH_PEERS_KEEP=DIR: the peer's logs and configs (and the writer's errors) kept per run
    if (process.env.BENCH_PEERS_KEEP) await run("cp", ["-r", `${S}/peers`, `${process.env.BENCH_PEERS_KEEP}/${p.key}-${i}`]).then(() => run("cp", ["-r", w.dir, `${process.env.BENCH_PEERS_KEEP}/${p.key}-${i}/writer`])).catch(() => undefined);
    await p.stop().catch((e) => console.log(`  ${p.key}: stop: ${(e as Error).message.slice(0, 200)}`));
  }
}

/** bollard: one lab with its agents, RUNS power-offs of the MySQL primary's node (bench-failover's loop). */
async function bollardRuns(): Promise<PeerResult[]> {
  delete process.env.LAB_NO_AGENT;
  await down();
  await lab("up");
  const out = { mysql: [] as RunFigure[], redis: [] as RunFigure[], vip: [] as RunFigure[] };
  for (let i = 1; i <= RUNS; i++) {
    for (const n of NODES) if (!(await status(n))) await lab("power", n, "on").catch(() => undefined);
    const { holder } = await until("a healthy data path", 90_000, async () => {
      const m = await healthy("mysql");
      if (!m || !(await healthy("redis"))) return null;
      const st = await status(m.leader);
      if (!st || Object.keys(st.flags).some((k) => k.startsWith("fenc")) || (await ackLastFailover(m.leader, st))) return null;
      return m;
    }, 500);
    const w = new Writer();
    w.start({ mysql: true, redis: true });
    await until("writes flowing", 30_000, async () => w.acked("mysql").length > 10 && w.acked("redis").length > 10);
    const t0 = new Date(Date.now() - 50).toISOString();
    await lab("power", holder, "off");
    const off = await until("the power-off in events.log", 10_000, async () => faultAt(t0, /power off by bmc/));
    const rest = NODES.filter((n) => n !== holder);
    const m = await until("MySQL back", 60_000, async () => w.resumed("mysql", off), 100);
    const r = await until("Redis back", 60_000, async () => w.resumed("redis", off), 100);
    const h = await until("a healthy MySQL", 60_000, () => healthy("mysql", rest), 300);
    await sleep(500);
    await w.stop();
    const lm = (await lostMysql(w, h.holder)).length;
    const rh = await until("a healthy Redis", 30_000, () => healthy("redis", rest), 300);
    const lr = (await lostRedis(w, rh.holder, dataIp(rh.holder))).length;
    out.mysql.push({ run: i, seconds: m.afterMs / 1000, lost: lm, note: `${holder} -> ${h.holder}` });
    out.redis.push({ run: i, seconds: r.afterMs / 1000, lost: lr, note: `${holder} -> ${rh.holder}` });
    out.vip.push({ run: i, seconds: ((w.connectAfter(off.end) ?? NaN) - off.start) / 1000, lost: null });
    console.log(`bollard run ${i}: ${holder} off: mysql ${fmt(m.afterMs / 1000)} s (lost ${lm}), redis ${fmt(r.afterMs / 1000)} s (lost ${lr}), vip ${fmt(out.vip.at(-1)!.seconds)} s`);
    // where the time went (ms after the power-off), from the agents' event logs
    const evs = eventsSince(t0, off.start);
    console.log(`  ${breakdownLine("mysql", breakdown(evs, "mysql", holder, m.afterMs))}`);
    console.log(`  ${breakdownLine("redis", breakdown(evs, "redis", holder, r.afterMs))}`);
    if (process.env.BENCH_PEERS_KEEP) {
      mkdirSync(process.env.BENCH_PEERS_KEEP, { recursive: true });
      writeFileSync(`${process.env.BENCH_PEERS_KEEP}/bollard-${i}.events`, evs.map((e) => `${String(e.at).padStart(6)} ${e.node} ${e.kind} ${e.detail}`).join("\n") + "\n");
      await run("cp", ["-r", w.dir, `${process.env.BENCH_PEERS_KEEP}/bollard-${i}-writer`]).catch(() => undefined);
    }
    await lab("power", holder, "on");
  }
  await down();
  return [
    { key: "bollard_mysql", what: "MariaDB through the VIP and portal", runs: out.mysql },
    { key: "bollard_redis", what: "Redis through the VIP and portal", runs: out.redis },
    { key: "bollard_vip", what: "login through the VIP", runs: out.vip },
  ];
}

const results: PeerResult[] = [];
if (WANT.includes("bollard")) results.push(...(await bollardRuns()));
for (const p of PEERS) {
  if (!WANT.some((w) => peerKey(w) === p.key)) continue;
  const r: PeerResult = { key: p.key, what: p.what, runs: [] };
  for (let i = 1; i <= RUNS; i++) {
    try {
      const f = await peerRun(p, i);
      r.runs.push(f);
      console.log(`${p.key} run ${i}: ${fmt(f.seconds)} s, lost ${f.lost ?? "-"}${f.note ? ` (${f.note})` : ""}`);
    } catch (e) {
      const why = (e as Error).message.split("\n").filter(Boolean).slice(-6).join(" | ").slice(-500);
      console.log(`${p.key} run ${i}: FAILED: ${why}`);
      if (!r.runs.length) { r.skipped = why; break; }
      r.runs.push({ run: i, seconds: NaN, lost: null, note: why });
    }
  }
  results.push(r);
}
await down();
delete process.env.LAB_NO_AGENT;
console.log(`\nbench-peers: RUNS=${RUNS}, ${new Date().toISOString().slice(0, 16)}Z, times in s from the power-off of the primary's node to the first acknowledged write`);
for (const l of table(results)) console.log(l);
console.log(summaryLine(results));
