// Randomized fault schedules, written in the scenario language so that any failing seed
// prints as a script that replays it exactly (and can be kept as a scenario).
import { rng } from "./rng.ts";
import { runScript } from "./scenario.ts";

export interface ScheduleResult {
  seed: number;
  violations: string[];
  script: string;
  messages: number;
  virtualMs: number;
}

/** One schedule: 3 or 5 nodes, a burst of random faults, then heal-all and the liveness check. */
export function generate(seed: number): string {
  const r = rng(seed);
  const pick = <T,>(a: T[]): T => a[Math.floor(r() * a.length)];
  const int = (lo: number, hi: number) => Math.floor(lo + r() * (hi - lo + 1));
  const n = r() < 0.75 ? 3 : 5;
  const nodes = Array.from({ length: n }, (_, i) => `node${i + 1}`);
  const lines = [`seed ${seed}`, `members ${nodes.join(" ")}`, `0 start ${nodes.join(" ")}`];
  const faultEnd = int(8000, 20000);
  let spare = false;
  const faults = int(2, 7);
  for (let i = 0; i < faults; i++) {
    const at = int(1500, faultEnd - 500);
    const dur = int(200, 6000);
    const until = Math.min(at + dur, faultEnd);
    const node = pick(nodes);
    switch (pick(["crash", "crash", "partition", "partition", "isolate", "oneway", "stall", "jump", "net", "cmd", "member"])) {
      case "crash": lines.push(`${at} crash ${node}`, `${until} restart ${node}`); break;
      case "partition": lines.push(`${at} partition ${node}`, `${until} heal ${node}`); break;
      case "isolate": lines.push(`${at} isolate-leader`); break;
      case "oneway": {
        const other = pick(nodes.filter((x) => x !== node));
        lines.push(`${at} oneway ${node} ${other}`, `${until} heal ${node}`);
        break;
      }
      case "stall": lines.push(`${at} stall ${node} ${Math.min(dur, faultEnd - at)}`); break;
      case "jump": lines.push(`${at} jump ${node} ${pick([-1, 1]) * int(1500, 120000)}`); break;
      case "net":
        lines.push(`${at} drop ${(r() * 0.3).toFixed(2)}`, `${at} dup ${(r() * 0.2).toFixed(2)}`, `${at} delay 1 ${int(5, 120)}`);
        lines.push(`${until} drop 0`, `${until} dup 0`, `${until} delay 1 15`);
        break;
      case "cmd": lines.push(`${at} cmd ${node} assign ${pick(["mysql", "redis", "vip"])} ${pick(nodes)}`); break;
      case "member":
        if (!spare) { spare = true; lines.push(`${at} spawn node9`, `${at + 300} cmd ${node} add node9`); }
        else lines.push(`${at} cmd ${node} remove node9`);
        break;
    }
  }
  lines.push(`${faultEnd} heal-all`, `${faultEnd + 3000} expect-live`, `${faultEnd + 3000} end`);
  // Order by time, keeping the order of equal times as written (start stays first).
  const head = lines.slice(0, 2);
  const timed = lines.slice(2).map((l, i) => ({ l, i, at: Number(l.split(" ")[0]) })).sort((a, b) => a.at - b.at || a.i - b.i);
  return [...head, ...timed.map((x) => x.l)].join("\n") + "\n";
}

export function runSeed(seed: number, record = false): ScheduleResult {
  const script = generate(seed);
  const res = runScript(script, { drift: true, record });
  return { seed, violations: res.violations, script, messages: res.world.messages, virtualMs: res.world.now };
}

export function replayCommand(seed: number): string {
  return `node --import tsx test/sim/cli.ts replay --seed ${seed}`;
}
