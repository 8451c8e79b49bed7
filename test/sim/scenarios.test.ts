// Scenario tests: each directory under test/scenarios holds a README (the story), a cmdlist
// (the timed commands) and log.expect (the transcript), compared line by line.
// UPDATE=1 rewrites log.expect from the current run: read the diff before committing it.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runScript } from "./scenario.ts";

const dir = new URL("../scenarios/", import.meta.url).pathname;
const s = suite("scenarios");

for (const name of readdirSync(dir).sort()) {
  s(name, () => {
    const base = join(dir, name);
    assert.ok(readFileSync(join(base, "README"), "utf8").trim().length > 20, "each scenario tells its story in README");
    const r = runScript(readFileSync(join(base, "cmdlist"), "utf8"));
    const got = r.transcript.join("\n") + "\n";
    if (process.env.UPDATE) writeFileSync(join(base, "log.expect"), got);
    assert.equal(r.violations, [], "no invariant is violated");
    assert.fixture(got, readFileSync(join(base, "log.expect"), "utf8"));
  });
}

s.run();
