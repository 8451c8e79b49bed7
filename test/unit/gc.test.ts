// env/gc: the agent's once-a-minute full collection runs node's gc() when --expose-gc gave
// one, and does nothing otherwise.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { collectGarbage } from "../../agent/env/gc.ts";

const lines: string[] = [];
const log: Logger = { debug: (m: string) => void lines.push(m), info() {}, warn() {}, error() {}, child: () => log } as unknown as Logger;
const s = suite("env/gc");

s("calls gc() when node exposes it, and logs how long it took", () => {
  const g = globalThis as { gc?: () => void };
  const had = g.gc;
  let calls = 0;
  g.gc = () => void calls++;
  try {
    collectGarbage(log);
  } finally {
    g.gc = had;
  }
  assert.is(calls, 1);
  assert.equal(lines, ["garbage collected"]);
});

s("does nothing without --expose-gc", () => {
  const g = globalThis as { gc?: () => void };
  const had = g.gc;
  delete g.gc;
  lines.length = 0;
  try {
    collectGarbage(log);
  } finally {
    if (had) g.gc = had;
  }
  assert.equal(lines, []);
});

s.run();
