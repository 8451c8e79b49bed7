// make bench-failover RUNS=N: N unplanned power-off failovers of the MySQL primary's node
// in the lab (Redis's master moves with it when they share a node), then one planned
// switchover, all under a continuous writer through the VIP. Times count from the power-off
// to the first acknowledged write through the VIP. Last line:
// failover: runs=N mysql_p50=X mysql_p99=X redis_p50=X redis_p99=X vip_p99=X switchover_pause=X lost_acked_writes=K
import { NODES, Writer, ackLastFailover, bollard, dataIp, events, faultAt, healthy, lab, lostMysql, lostRedis, status, until } from "./ha-lab.ts";

const RUNS = Number(process.env.RUNS ?? 10);
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN; };
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "n/a");

async function settle(): Promise<{ leader: string; holder: string }> {
  for (const n of NODES) if (!(await status(n))) await lab("power", n, "on").catch(() => undefined);
  return until("a healthy data path", 90_000, async () => {
    const m = await healthy("mysql");
    const r = await healthy("redis");
    if (!m || !r) return null;
    const st = await status(m.leader);
    if (!st || Object.keys(st.flags).some((k) => k.startsWith("fenc"))) return null;
    if (await ackLastFailover(m.leader, st)) return null;
    return m;
  }, 500);
}

/** Where the time of one failover went, ms after the fault began, from the agents' event logs. */
const STEPS = ["elected", "started", "fenced", "picked", "committed", "promoted", "vip", "portal", "write"] as const;
type Breakdown = Partial<Record<(typeof STEPS)[number], number>> & { leaderLost: boolean; leaseWait?: number };
function breakdown(t0: string, start: number, holder: string, writeMs: number): Breakdown {
  const all = NODES.flatMap((n) => events(n).filter((e) => e.ts >= t0).map((e) => ({ ...e, node: n, at: Date.parse(e.ts) - start })));
  const first = (re: RegExp, node?: string) => all.filter((e) => (!node || e.node === node) && re.test(`${e.kind} ${e.detail}`)).sort((a, b) => a.at - b.at)[0];
  const elected = first(/^role status change candidate => leader/);
  const started = first(new RegExp(`^failover failover of mysql from ${holder} started`));
  const cand = /step pickCandidate done in \d+ ms: (\S+)/.exec(first(/^step failover mysql step pickCandidate done/)?.detail ?? "")?.[1];
  const b: Breakdown = { leaderLost: !!elected, write: writeMs };
  if (elected) { b.elected = elected.at; b.leaseWait = Number(/lease usable in (\d+) ms/.exec(elected.detail)?.[1] ?? NaN); }
  b.started = started?.at;
  b.fenced = first(new RegExp(`^fence ${holder} level \\S+ CONFIRMED`))?.at;
  b.picked = first(/^step failover mysql step pickCandidate done/)?.at;
  b.committed = first(/^step failover mysql step commitConfig done/)?.at;
  if (cand) {
    b.promoted = first(/^lrm mysql promote done/, cand)?.at;
    b.vip = first(/^lrm vip acquire done/, cand)?.at;
    b.portal = first(new RegExp(`^lrm portal route done in \\d+ ms: mysql -> ${cand}`), cand)?.at;
  }
  return b;
}
const breakdowns: Breakdown[] = [];

await lab("down");
await lab("up");
const mysqlT: number[] = [], redisT: number[] = [], vipT: number[] = [];
let lost = 0;
console.log("run  node   mysql_s  redis_s  vip_s  lost");
for (let i = 1; i <= RUNS; i++) {
  const { holder } = await settle();
  const w = new Writer();
  w.start({ mysql: true, redis: true });
  await until("writes flowing", 30_000, async () => w.acked("mysql").length > 10 && w.acked("redis").length > 10);
  const t0 = new Date(Date.now() - 50).toISOString();
  await lab("power", holder, "off");
  // from the moment the node's processes started dying (the lab's events.log)
  const off = await until("the power-off in events.log", 10_000, async () => faultAt(t0, /power off by bmc/));
  const rest = NODES.filter((n) => n !== holder);
  const m = await until("MySQL back", 60_000, async () => w.resumed("mysql", off), 100);
  const r = await until("Redis back", 60_000, async () => w.resumed("redis", off), 100);
  const h = await until("a healthy MySQL", 60_000, () => healthy("mysql", rest), 300);
  await new Promise((res) => setTimeout(res, 500));
  await w.stop();
  const lm = await lostMysql(w, h.holder);
  const rh = await until("a healthy Redis", 30_000, () => healthy("redis", rest), 300);
  const lr = await lostRedis(w, rh.holder, dataIp(rh.holder));
  const vip = (w.connectAfter(off.end) ?? NaN) - off.start;
  mysqlT.push(m.afterMs / 1000); redisT.push(r.afterMs / 1000); vipT.push(vip / 1000);
  lost += lm.length;
  breakdowns.push(breakdown(t0, off.start, holder, m.afterMs));
  console.log(`${String(i).padStart(3)}  ${holder}  ${f(m.afterMs / 1000).padStart(7)}  ${f(r.afterMs / 1000).padStart(7)}  ${f(vip / 1000).padStart(5)}  ${lm.length} (redis ${lr.length})`);
  await lab("power", holder, "on");
}
// one planned switchover under the writer
const { holder } = await settle();
const target = NODES.find((n) => n !== holder)!;
const w = new Writer();
w.start({ mysql: true });
await until("writes flowing", 30_000, async () => w.acked("mysql").length > 10);
const at = Date.now();
await bollard(holder, `switchover mysql --to ${target}`, 90_000);
await new Promise((res) => setTimeout(res, 1000));
await w.stop();
const a = w.acked("mysql").filter((x) => x.at >= at);
let pause = 0;
for (let i = 1; i < a.length; i++) pause = Math.max(pause, a[i].at - a[i - 1].at);
const h2 = await until("a healthy MySQL", 30_000, () => healthy("mysql"), 300);
lost += (await lostMysql(w, h2.holder)).length;
await lab("down");
// where the time went: each step's time after the fault (ms), per run, then the median
const cell = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "-" : String(Math.round(x))).padStart(9);
console.log(`\nbreakdown (ms after the fault began; leader: the lost node led, and the new leader waited out its lease)`);
console.log(`run  leader  lease${STEPS.map((k) => k.padStart(9)).join("")}`);
breakdowns.forEach((b, i) => console.log(`${String(i + 1).padStart(3)}  ${(b.leaderLost ? "lost" : "-").padEnd(6)} ${cell(b.leaseWait).slice(4)}${STEPS.map((k) => cell(b[k])).join("")}`));
const med = (k: (typeof STEPS)[number], sel: (b: Breakdown) => boolean) => pct(breakdowns.filter(sel).map((b) => b[k]).filter((x): x is number => x !== undefined), 50);
for (const [label, sel] of [["p50 leader kept", (b: Breakdown) => !b.leaderLost], ["p50 leader lost", (b: Breakdown) => b.leaderLost]] as const) {
  if (breakdowns.some(sel)) console.log(`${label.padEnd(17)}${STEPS.map((k) => cell(med(k, sel))).join("")}`);
}
console.log(`switchover: longest write pause ${pause} ms`);
console.log(`failover: runs=${RUNS} mysql_p50=${f(pct(mysqlT, 50))} mysql_p99=${f(pct(mysqlT, 99))} redis_p50=${f(pct(redisT, 50))} redis_p99=${f(pct(redisT, 99))} vip_p99=${f(pct(vipT, 99))} switchover_pause=${f(pause / 1000)} lost_acked_writes=${lost}`);
