// childrenOf (agent/resources/portal.ts): the nginx master's workers, read from the master's
// /proc/<pid>/task/<pid>/children, as reload() asks every 2 ms while it waits for new workers.
import { spawn } from "node:child_process";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { childrenOf } from "../../agent/resources/portal.ts";

const s = suite("portal: a process's live children");
s("lists this process's children, not once they have exited; cheap enough to ask every 2 ms", async () => {
  const kids = [spawn("sleep", ["30"]), spawn("sleep", ["30"])];
  try {
    const pids = kids.map((k) => k.pid!);
    assert.ok(pids.every((p) => childrenOf(process.pid).includes(p)), `${pids} among ${childrenOf(process.pid)}`);
    kids[0]!.kill("SIGKILL");
    await new Promise((r) => kids[0]!.once("close", r));
    assert.not.ok(childrenOf(process.pid).includes(pids[0]!), "an exited child is gone");
    assert.ok(childrenOf(process.pid).includes(pids[1]!));
    assert.equal(childrenOf(2 ** 22 + 1), [], "no such process: none");
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) childrenOf(process.pid);
    console.log(`  childrenOf: ${((performance.now() - t0) / 100).toFixed(3)} ms per call`);
  } finally {
    for (const k of kids) k.kill("SIGKILL");
  }
});
s.run();
