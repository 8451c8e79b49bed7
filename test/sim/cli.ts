// The simulator from the command line.
//   random --seeds N [--from S]   run N randomized schedules; last line:
//                                 sim: N schedules, V violations, R schedules/min
//   replay --seed S               run one schedule with its transcript and the script
//   ha-replay --seed S            the same for a randomized HA schedule
//   scenario DIR                  run one scenario directory and print its transcript
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runHaSeed } from "./ha-random.ts";
import { generate, replayCommand, runSeed } from "./random.ts";
import { runScript } from "./scenario.ts";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { seeds: { type: "string", default: "1000" }, from: { type: "string", default: "1" }, seed: { type: "string" } },
});

switch (positionals[0]) {
  case "random": {
    const n = Number(values.seeds);
    const from = Number(values.from);
    const t0 = performance.now();
    let bad = 0;
    for (let s = from; s < from + n; s++) {
      const r = runSeed(s);
      if (r.violations.length) {
        bad++;
        console.log(`VIOLATION seed ${s}:\n  ${r.violations.join("\n  ")}\n  replay: ${replayCommand(s)}`);
      }
    }
    const min = (performance.now() - t0) / 60000;
    console.log(`sim: ${n} schedules, ${bad} violations, ${Math.round(n / min)} schedules/min`);
    process.exit(bad ? 1 : 0);
  }
  case "replay": {
    const seed = Number(values.seed);
    const script = generate(seed);
    const r = runScript(script, { drift: true });
    console.log(script);
    console.log(r.transcript.join("\n"));
    console.log(r.violations.length ? `violations:\n  ${r.violations.join("\n  ")}` : "no violations");
    process.exit(r.violations.length ? 1 : 0);
  }
  case "ha-replay": {
    const r = runHaSeed(Number(values.seed), true);
    console.log(r.script);
    console.log(r.transcript.join("\n"));
    console.log(r.violations.length ? `violations:\n  ${r.violations.join("\n  ")}` : "no violations");
    process.exit(r.violations.length ? 1 : 0);
  }
  case "scenario": {
    const r = runScript(readFileSync(join(positionals[1], "cmdlist"), "utf8"));
    console.log(r.transcript.join("\n"));
    if (r.violations.length) console.log(`violations:\n  ${r.violations.join("\n  ")}`);
    process.exit(r.violations.length ? 1 : 0);
  }
  default:
    console.error("usage: cli.ts random --seeds N [--from S] | replay --seed S | ha-replay --seed S | scenario DIR");
    process.exit(2);
}
