// Randomized HA schedules (HA_SEEDS, default 100): power cuts, partitions, BMC and switch
// outages, stalls and switchovers with a client writing through the VIP. Each is one test;
// a failure names the seed and the command that replays it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runHaSeed } from "./ha-random.ts";

const n = Number(process.env.HA_SEEDS ?? 100);
const from = Number(process.env.HA_FROM ?? 1);
const s = suite("random HA schedules");
const t0 = performance.now();
for (let seed = from; seed < from + n; seed++) {
  s(`HA seed ${seed}`, () => {
    const r = runHaSeed(seed);
    assert.equal(r.violations, [], `HA seed ${seed} violated an invariant; replay: node --import tsx test/sim/cli.ts ha-replay --seed ${seed}`);
  });
}
s.after(() => console.log(`sim: ${n} HA schedules, ${Math.round(n / ((performance.now() - t0) / 60000))} schedules/min`));
s.run();
