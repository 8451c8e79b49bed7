// Randomized schedules: every invariant is checked after every step; each schedule is one
// test. SIM_SEEDS (default 500) and SIM_FROM choose the seeds. A failure names the seed
// and the command that replays it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { replayCommand, runSeed } from "./random.ts";

const n = Number(process.env.SIM_SEEDS ?? 500);
const from = Number(process.env.SIM_FROM ?? 1);
const s = suite("random schedules");
let messages = 0;
let virtualMs = 0;
const t0 = performance.now();

for (let seed = from; seed < from + n; seed++) {
  s(`seed ${seed}`, () => {
    const r = runSeed(seed);
    messages += r.messages;
    virtualMs += r.virtualMs;
    assert.equal(r.violations, [], `seed ${seed} violated an invariant; replay: ${replayCommand(seed)}`);
  });
}

s.after(() => {
  const min = (performance.now() - t0) / 60000;
  console.log(`sim: ${n} schedules, ${Math.round(virtualMs / 1000)} s virtual, ${messages} messages, ${Math.round(n / min)} schedules/min`);
});
s.run();
