// What a node says of its image (docs/upgrade.md "Image upgrade"), read once at the agent's
// start: the root slot it runs (the kernel command line), that root's image version
// (/usr/lib/bollard/release), and what became of the last image upgrade (trialOutcome). A
// rollback the loader did by itself (the new root did not boot, or ran out of tries) is
// found here and written down, so that it is reported the same after later boots.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readJson, writeResult } from "./image-gate.ts";
import { bootId } from "./image.ts";
import { SLOTS, activeSlot, trialOutcome, type ImageResult, type ImageTrial, type Slot } from "./image-plan.ts";

export interface ImageState {
  slot: Slot;
  version: string | null;
  last: ImageResult | null;
}

export const RELEASE = "/usr/lib/bollard/release";

/** null: not booted from a bollard image (the lab, a development machine). */
export function imageState(stateDir: string, now = Date.now()): ImageState | null {
  let cmdline: string;
  try {
    cmdline = readFileSync("/proc/cmdline", "utf8");
  } catch {
    return null;
  }
  const s = activeSlot(cmdline, SLOTS);
  if (!s.ok || !existsSync(RELEASE)) return null;
  const version = /^VERSION=(.*)$/m.exec(readFileSync(RELEASE, "utf8"))?.[1] ?? null;
  const trial = readJson<ImageTrial>(join(stateDir, "image-trial.json"));
  const result = readJson<ImageResult>(join(stateDir, "image-result.json"));
  const last = trialOutcome(trial, result, s.slot, now, bootId());
  if (last && last !== result && last.step === "rolled-back") {
    try {
      writeResult(stateDir, last);
    } catch { /* reported anyway */ }
  }
  return { slot: s.slot, version, last };
}
