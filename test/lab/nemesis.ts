// The fault campaign (issue 17 item 4): random fault schedules in the lab, one or two faults at
// once, under a MySQL writer and a Redis writer through the VIP (Redis writes count once WAIT 1
// confirms a replica has them) and a sampler of every node's writability every 100 ms. After
// each schedule heals, it checks: no acknowledged write lost, never two writable primaries in
// one sample, the cluster healthy again within HEAL_BOUND_MS, and the same data on every node.
// A failing schedule prints its seed and the command that replays it.
//
//   make nemesis RUNS=50 SEED=7          (node --import tsx test/lab/nemesis.ts --runs 50 --seed 7)
//   last line: nemesis: schedules=N failed=F seeds_failed=[...] lost_mysql=0 lost_redis=0 two_writable=0
import { parseArgs } from "node:util";
import {
  NODES, Writer, caughtUp, tornEventLines, dataIp, events, healthy, lab, lostMysql, lostRedis, restore, sameData, status, until,
} from "./ha-lab.ts";

export const HEAL_BOUND_MS = 120_000;

/** A small seeded generator (mulberry32): the same seed, the same schedule. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Fault {
  /** ms after the schedule starts */
  at: number;
  /** how long it lasts before its inverse (stalls end by themselves) */
  forMs: number;
  /** what to run, as lab words; TARGET is resolved when it starts (holder, leader, replica, a node) */
  on: string[];
  off: string[][];
  target: "holder" | "leader" | "replica" | "node1" | "node2" | "node3" | "switch";
  say: string;
}

/** One schedule: one fault, or two at once (every third schedule, about). */
export function schedule(seed: number): Fault[] {
  const r = rng(seed);
  const pick = <T,>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const n = r() < 0.35 ? 2 : 1;
  const out: Fault[] = [];
  for (let i = 0; i < n; i++) {
    const at = i === 0 ? 0 : Math.round(r() * 3000);
    const forMs = 1000 + Math.round(r() * 7000);
    const target = pick(["holder", "holder", "leader", "replica", "node1", "node2", "node3"] as const);
    const T = "TARGET";
    const kinds: (() => Fault)[] = [
      () => ({ at, forMs, target, on: ["power", T, "off"], off: [["power", T, "on"]], say: `power ${target} off for ${forMs} ms` }),
      () => ({ at, forMs: 0, target, on: ["power", T, "off"], off: [["power", T, "on"]], say: `power blip of ${target}` }),
      () => ({ at, forMs, target, on: ["kill", T], off: [["boot", T]], say: `kill -9 of everything on ${target}, booted after ${forMs} ms` }),
      () => { const dir = pick(["both", "in", "out"]); return { at, forMs, target, on: ["partition", T, dir], off: [["heal", T]], say: `partition ${target} (${dir}) for ${forMs} ms` }; },
      () => ({ at, forMs, target: "leader", on: ["partition", T], off: [["heal", T]], say: `isolate the leader for ${forMs} ms` }),
      () => { const sw = pick(["switchA", "switchB"]); return { at, forMs, target, on: ["link", sw, T, "down"], off: [["link", sw, T, "up"]], say: `${sw}'s link to ${target} down for ${forMs} ms` }; },
      () => { const sw = pick(["switchA", "switchB"]); return { at, forMs, target: "switch", on: ["switch", sw, "down"], off: [["switch", sw, "up"]], say: `${sw} down for ${forMs} ms` }; },
      () => ({ at, forMs, target, on: ["bmc", T, "down"], off: [["bmc", T, "up"]], say: `${target}'s BMC down for ${forMs} ms` }),
      () => { const s = (0.5 + r() * 5).toFixed(1); return { at, forMs: 0, target, on: ["stall", T, s], off: [], say: `${target}'s agent stalled ${s} s` }; },
      () => ({ at, forMs, target, on: ["broker", T, "down"], off: [["broker", T, "up"]], say: `${target}'s mosquitto stopped for ${forMs} ms` }),
      () => { const svc = pick(["mariadb", "redis", "nginx"]); const op = pick(["kill", "hang"]); return { at, forMs, target, on: ["service", T, svc, op], off: [["service", T, svc, op === "hang" ? "resume" : "start"]], say: `${svc} on ${target} ${op === "kill" ? "killed" : `hung for ${forMs} ms`}` }; },
    ];
    out.push(pick(kinds)());
  }
  return out;
}

async function resolve(t: Fault["target"]): Promise<string> {
  if (t === "switch") return "";
  if (t.startsWith("node")) return t;
  const h = await healthy("mysql").catch(() => null);
  const sts = await Promise.all(NODES.map((n) => status(n)));
  const leader = NODES.find((_, i) => sts[i]?.role === "leader") ?? "node1";
  const holder = h?.holder ?? sts.find((s) => s)?.assignments.mysql ?? "node1";
  if (t === "leader") return leader;
  if (t === "holder") return holder;
  return NODES.find((n) => n !== holder) ?? "node2";
}

export interface Outcome {
  seed: number;
  said: string[];
  ok: boolean;
  problems: string[];
  figures: string;
  lostMysql: number;
  lostRedis: number;
  twoWritable: number;
}

/** Runs one schedule on a healthy lab; the lab is left healed (possibly rebuilt by restore()). */
export async function runSchedule(seed: number, figures: string[]): Promise<Outcome> {
  const faults = schedule(seed);
  await restore(figures);
  const w = new Writer();
  w.start({ mysql: true, redis: true, redisWait: true, sample: true });
  const problems: string[] = [];
  const said: string[] = [];
  try {
    await until("writes flowing", 30_000, async () => w.acked("mysql").length > 20 && w.acked("redis").length > 20);
    const t0 = Date.now();
    await Promise.all(faults.map(async (f) => {
      await new Promise((r) => setTimeout(r, f.at));
      const target = await resolve(f.target);
      said.push(`+${Date.now() - t0} ms ${f.target === "switch" ? f.say : f.say.replace(f.target, `${f.target}=${target}`)}`);
      const sub = (ws: string[]) => ws.map((x) => (x === "TARGET" ? target : x));
      // a stall blocks for its length: run it alongside
      const on = lab(...sub(f.on)).catch((e) => said.push(`(lab ${sub(f.on).join(" ")}: ${String(e).slice(0, 120)})`));
      if (f.on[0] !== "stall") await on;
      await new Promise((r) => setTimeout(r, f.forMs));
      for (const o of f.off) await lab(...sub(o)).catch(() => undefined);
      await on;
    }));
    await new Promise((r) => setTimeout(r, 2000));
    // heal everything (power on, ports up, BMCs up, partitions healed, servers resumed), then wait
    const healedAt = Date.now();
    const before = figures.length;
    const healthy3 = await restore(figures).then(() => true, (e) => { problems.push(`not healthy within the bound after healing: ${String(e).slice(0, 200)}`); return false; });
    // restore() rebuilds the lab for a node held out for re-cloning (an old primary's unacknowledged
    // tail: the right outcome, said) and for a cluster that did not come back (a failure)
    for (const f of figures.slice(before)) {
      if (/re-clone/.test(f)) said.push(`(${f})`);
      else problems.push(`not healthy within ${HEAL_BOUND_MS / 1000} s of healing: ${f}`);
    }
    const backMs = Date.now() - healedAt;
    await new Promise((r) => setTimeout(r, 1000));
    await w.stop();
    const m = await healthy("mysql");
    const rr = await healthy("redis");
    const lostM = m ? await lostMysql(w, m.holder) : [];
    const lostR = rr ? await lostRedis(w, rr.holder, dataIp(rr.holder)) : [];
    const two = w.twoWritable();
    if (lostM.length) problems.push(`${lostM.length} acknowledged MySQL writes lost (${lostM.slice(0, 3).join(",")})`);
    if (lostR.length) problems.push(`${lostR.length} Redis writes a replica had confirmed lost`);
    if (two.length) problems.push(`two writable primaries in ${two.length} samples (${two.slice(0, 2).join(" | ")})`);
    if (w.samples() < 20) problems.push("the sampler did not run");
    if (healthy3 && m) {
      await caughtUp(m.holder).catch((e) => problems.push(String(e).slice(0, 200)));
      const same = await until("the same data on every node", 30_000, async () => { const d = await sameData(); return d.same ? d : null; }, 500).catch(() => sameData());
      if (!same.same) problems.push(`different data after healing: ${same.detail}`);
    }
    const pm = w.longestPause("mysql", t0), pr = w.longestPause("redis", t0);
    return {
      seed, said, ok: problems.length === 0, problems, lostMysql: lostM.length, lostRedis: lostR.length, twoWritable: two.length,
      figures: `mysql paused ${pm.ms} ms, redis ${pr.ms} ms, healthy ${Math.round(backMs / 1000)} s after healing`,
    };
  } finally {
    await w.stop();
  }
}

/** The leader's event lines of the schedule, for a failure's report. */
export function timelineSince(iso: string): string[] {
  return NODES.flatMap((n) => events(n).filter((e) => e.ts >= iso && !/^(commit|propose)$/.test(e.kind)).map((e) => `${e.ts.slice(11, 23)} ${n} ${e.kind} ${e.detail.slice(0, 200)}`)).sort();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "10" }, seed: { type: "string", default: String(Date.now() % 100000) } } });
  const runs = Number(values.runs), first = Number(values.seed);
  const figures: string[] = [];
  await lab("down");
  await lab("up");
  const out: Outcome[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const seed = first + i;
      const t0 = new Date().toISOString();
      const o = await runSchedule(seed, figures).catch((e): Outcome => ({ seed, said: [], ok: false, problems: [`crashed: ${String(e).slice(0, 300)}`], figures: "", lostMysql: 0, lostRedis: 0, twoWritable: 0 }));
      out.push(o);
      console.log(`schedule ${seed}: ${o.ok ? "ok" : "FAILED"}: ${o.said.join("; ")}; ${o.figures}`);
      if (!o.ok) {
        for (const p of o.problems) console.log(`  ${p}`);
        try {
          for (const l of timelineSince(t0).slice(-40)) console.log(`    ${l}`);
        } catch (e) {
          console.log(`    (timeline not read: ${String(e).slice(0, 200)})`);
        }
        console.log(`  replay: make nemesis RUNS=1 SEED=${seed}`);
      }
    }
  } catch (e) {
    // whatever ends the campaign early still gets its summary line below, with the cause
    console.log(`campaign stopped early: ${String((e as Error)?.stack ?? e).slice(0, 500)}`);
    out.push({ seed: -1, said: [], ok: false, problems: [String(e)], figures: "", lostMysql: 0, lostRedis: 0, twoWritable: 0 });
  } finally {
    await lab("down").catch((e) => console.log(`lab down failed: ${String(e).slice(0, 200)}`));
  }
  if (tornEventLines) console.log(`(${tornEventLines} event lines cut by power-offs were skipped)`);
  for (const f of figures) console.log(f);
  const failed = out.filter((o) => !o.ok);
  console.log(`nemesis: schedules=${out.length} failed=${failed.length} seeds_failed=[${failed.map((o) => o.seed).join(",")}] lost_mysql=${out.reduce((a, o) => a + o.lostMysql, 0)} lost_redis=${out.reduce((a, o) => a + o.lostRedis, 0)} two_writable=${out.reduce((a, o) => a + o.twoWritable, 0)}`);
  process.exit(failed.length ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) main().catch((e) => { console.log(`nemesis: crashed: ${String((e as Error)?.stack ?? e).slice(0, 500)}`); process.exit(2); });
