// A full garbage collection once a minute, when node runs with --expose-gc (the unit and the
// lab do; docs/hardware.md "Idle cost"). The idle agent promotes ~1 MB a minute of
// short-lived garbage (MQTT packets, reports, readings) into V8's old space, and V8 collects
// it only when the old space reaches a limit set far above the agent's ~14 MB: RSS climbed
// ~1.2 MB a minute past the 80 MB target and on. One collection of this heap takes a few ms.
import type { Logger } from "./env.ts";

export const GC_EVERY_MS = 60_000;

/** One full collection; nothing without --expose-gc. */
export function collectGarbage(log: Logger): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") return;
  const t0 = performance.now();
  gc();
  log.debug("garbage collected", { ms: Math.round((performance.now() - t0) * 10) / 10 });
}
