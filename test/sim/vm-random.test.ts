// Randomized VM schedules (VM_SEEDS, default 60; test/sim/vm-random.ts): power cuts,
// partitions, stalls, BMC outages, agent restarts, crashing guests, storage daemons that stop,
// MySQL down, migrations, maintenance, operators' stops and restarts, with guests writing to
// their mirrored disks. Each is one test; a failure names the seed and the command that replays it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runVmSeed } from "./vm-random.ts";

const n = Number(process.env.VM_SEEDS ?? 60);
const from = Number(process.env.VM_FROM ?? 1);
const s = suite("random VM schedules");
const t0 = performance.now();
let writes = 0, boots = 0, migrations = 0;
for (let seed = from; seed < from + n; seed++) {
  s(`VM seed ${seed}`, () => {
    const r = runVmSeed(seed);
    writes += r.writes; boots += r.boots; migrations += r.migrations;
    assert.equal(r.violations, [], `VM seed ${seed} violated an invariant; replay: node --import tsx test/sim/vm-random.ts --seed ${seed}`);
  });
}
s.after(() => console.log(`sim: ${n} VM schedules, ${writes} acknowledged guest writes, ${boots} boots, ${migrations} live migrations, ${Math.round(n / ((performance.now() - t0) / 60000))} schedules/min`));
s.run();
