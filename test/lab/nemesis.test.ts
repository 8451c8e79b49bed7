// A short fault campaign in make test (issue 17 item 4): NEMESIS_RUNS schedules (default 5) from
// NEMESIS_SEED (default 7: two double faults, a hung server, a stall, a switch down; a run replays the same schedules), each checked as
// test/lab/nemesis.ts says. A longer one: make nemesis RUNS=50 SEED=S.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { lab } from "./ha-lab.ts";
import { runSchedule, schedule } from "./nemesis.ts";

const root = process.getuid?.() === 0;
const s = suite("fault campaign (nemesis)");
const figures: string[] = [];
const runs = Number(process.env.NEMESIS_RUNS ?? 5);
const first = Number(process.env.NEMESIS_SEED ?? 7);

s.before(async () => {
  if (!root) return;
  await lab("down");
  await lab("up");
});
s.after(async () => {
  if (!root) return;
  await lab("down");
  console.log(`figures:\n  ${figures.join("\n  ")}`);
});

for (let seed = first; seed < first + runs; seed++) {
  s(`schedule ${seed}: ${schedule(seed).map((f) => f.say).join(" + ")}`, async () => {
    if (!root) return console.log("skipped: the lab needs root");
    const o = await runSchedule(seed, figures);
    figures.push(`schedule ${seed}: ${o.said.join("; ")}; ${o.figures}`);
    assert.equal(o.problems, [], `schedule ${seed} (replay: make nemesis RUNS=1 SEED=${seed}): ${o.said.join("; ")}`);
  });
}

s.run();
