#!/usr/bin/env node
// Runs every uvu test file as its own process, group by group, and ends with the one line
// `N passed, M failed` that counts every test run. A file that dies before uvu prints its
// summary counts as one failure, so a crash is never silently a pass.
// Usage: node test/run.mjs [group...]   groups: unit sim broker lab image (default: all)
// image: the boot test of the node image; it runs when KVM can boot it here and otherwise
// prints why it was skipped (test/image/boot.test.ts, docs/image.md)
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const GROUPS = ["unit", "sim", "broker", "lab", "image"];
const want = process.argv.slice(2).length ? process.argv.slice(2) : GROUPS;
const root = new URL("..", import.meta.url).pathname;

function files(dir) {
  let out = [];
  let entries = [];
  try { entries = readdirSync(dir); } catch { return out; }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (e.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

// The lab is one per machine (fixed namespaces, /run/bollard-lab): a lab or image test file runs
// under this lock, so a second run on the machine (another checkout's make test, a developer's
// test under the same lock) waits for it instead of finding its namespaces.
const LAB_LOCK = process.env.BOLLARD_LAB_LOCK || "/run/lock/bollard-lab.lock";

// The pure groups (unit, sim) run two files at a time (TEST_JOBS): the machine has two cores, and
// a file is mostly node's and tsx's start-up. Their output is printed whole when a file ends, so
// files never interleave. broker, lab and image stay one at a time (real daemons, timings).
const JOBS = Math.max(1, Number(process.env.TEST_JOBS ?? 2));
const PARALLEL = new Set(["unit", "sim"]);

function run(file, group, stream = true) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const node = [process.execPath, "--import", "tsx", file];
    const argv = group === "lab" || group === "image" ? ["flock", "-o", LAB_LOCK, ...node] : node;
    const child = spawn(argv[0], argv.slice(1), {
      cwd: root, env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => { out += d; if (stream) process.stdout.write(d); });
    child.stderr.on("data", (d) => { out += d; if (stream) process.stderr.write(d); });
    child.on("close", (code) => {
      const total = [...out.matchAll(/Total:\s+(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
      const passed = [...out.matchAll(/Passed:\s+(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
      const skipped = [...out.matchAll(/Skipped:\s+(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
      let failed = Math.max(0, total - passed); // uvu's Total leaves skipped tests out
      if (code !== 0 && failed === 0) failed = 1; // died, or failed outside a test
      resolve({ file, passed, failed, skipped, ms: Date.now() - t0, out });
    });
  });
}

let passed = 0, failed = 0, skipped = 0;
const failures = [];
for (const g of want) {
  if (!GROUPS.includes(g)) { console.error(`unknown test group "${g}" (one of ${GROUPS.join(" ")})`); process.exit(2); }
  const list = files(join(root, "test", g));
  const count = (r) => {
    passed += r.passed; failed += r.failed; skipped += r.skipped;
    if (r.failed) failures.push(r.file.slice(root.length));
    console.log(`--- ${r.file.slice(root.length)}: ${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ""} (${(r.ms / 1000).toFixed(1)} s)`);
  };
  if (PARALLEL.has(g) && JOBS > 1) {
    let next = 0;
    const worker = async () => {
      while (next < list.length) {
        const f = list[next++];
        const r = await run(f, g, false);
        console.log(`\n=== ${f.slice(root.length)}`);
        process.stdout.write(r.out);
        count(r);
      }
    };
    await Promise.all(Array.from({ length: JOBS }, worker));
    continue;
  }
  for (const f of list) {
    console.log(`\n=== ${f.slice(root.length)}`);
    count(await run(f, g));
  }
}
if (failures.length) console.log(`\nfailed in: ${failures.join(", ")}`);
// skips are reported on their own line (each skipped file printed its reason above); the
// last line is exactly `N passed, M failed`
if (skipped) console.log(`${skipped} skipped (reasons above)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
