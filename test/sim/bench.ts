// make bench-sim: for 3, 5 and 7 nodes, how long after a leader crash a new leader is
// elected, and when its lease is usable (virtual time, default timings, drifting clocks,
// 1-15 ms links); and the bus traffic per node in steady state.
import { leaderOf } from "./scenario.ts";
import { World } from "./world.ts";

const TRIALS = Number(process.env.TRIALS ?? 300);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

console.log(`bench-sim: ${TRIALS} leader crashes per size, default timings (heartbeat 200 ms, peer-dead 1200 ms, jitter 300 ms, lease 2000 ms)`);
console.log("nodes  elected p50/p99 (s)  lease usable p50/p99 (s)  publishes/node/s  received/node/s");
for (const n of [3, 5, 7]) {
  const elected: number[] = [];
  const usable: number[] = [];
  let pubRate = 0, rxRate = 0;
  for (let trial = 1; trial <= TRIALS; trial++) {
    const w = new World(trial * 7919 + n, undefined, true, false);
    const names = Array.from({ length: n }, (_, i) => `node${i + 1}`);
    for (const x of names) w.addNode(x, names);
    w.at(0, () => names.forEach((x) => w.start(x)));
    w.runUntil(4000);
    const p0 = w.published, m0 = w.messages;
    w.runUntil(7000);
    pubRate += (w.published - p0) / 3 / n;
    rxRate += (w.messages - m0) / 3 / n;
    const old = leaderOf(w);
    if (!old) throw new Error(`trial ${trial}: no leader before the crash`);
    w.crash(old);
    const crashAt = w.now;
    let e: number | null = null, u: number | null = null;
    for (let t = crashAt; t < crashAt + 10000 && u === null; t += 5) {
      w.runUntil(t);
      const l = leaderOf(w);
      if (l && l !== old && e === null) e = w.now - crashAt;
      if (l && l !== old && w.node(l).core!.hasLease()) u = w.now - crashAt;
    }
    if (e === null || u === null) throw new Error(`trial ${trial}: no new leader within 10 s`);
    if (w.inv.violations.length) throw new Error(`trial ${trial}: ${w.inv.violations[0]}`);
    elected.push(e / 1000);
    usable.push(u / 1000);
  }
  const f = (x: number) => x.toFixed(2);
  console.log(`${String(n).padStart(5)}  ${f(pct(elected, 50))} / ${f(pct(elected, 99))}          ${f(pct(usable, 50))} / ${f(pct(usable, 99))}               ${(pubRate / TRIALS).toFixed(1).padStart(6)}           ${(rxRate / TRIALS).toFixed(1).padStart(6)}`);
}
