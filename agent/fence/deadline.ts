// Fence level 3 (DESIGN §5, §4 R6): when neither the BMC nor the switches can confirm, wait
// until the lost node has certainly fenced itself. A node without majority contact demotes
// what it holds after the quorum-loss timeout (R6); if its agent is hung instead, the
// watchdog (systemd WatchdogSec, backed by the BMC's or chipset's hardware watchdog) resets
// it within the watchdog timeout. So, counted from the last time we heard from it:
//
//   deadline = lastContact + (quorumLoss + watchdog) x (1 + maxDrift) + margin
//
// maxDrift covers the lost node's clock running slow against ours (its timers measure those
// intervals, not ours); margin covers scheduling and the reset itself. Sound only if the
// node's watchdog is armed: that is what makes "certainly" true.
// The computation is pure; the waiting goes through an injected clock.
import type { FenceProof } from "../resources/types.ts";
import type { Clock } from "./ipmi.ts";

export interface DeadlineTiming {
  /** the self-fence (quorum-loss) timeout, DESIGN §5: 3000 ms by default */
  quorumLossMs: number;
  /** the watchdog timeout that resets a hung node (WatchdogSec, or the BMC watchdog's) */
  watchdogMs: number;
  /** added on top; default 2000 ms */
  marginMs?: number;
  /** the worst clock rate error between two nodes, e.g. 0.05; default 0 */
  maxDrift?: number;
}

export interface DeadlineParams extends DeadlineTiming {
  /** monotonic ms (the same clock as Clock.now) of the last message heard from the node */
  lastContactMs: number;
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The monotonic time after which the node has certainly fenced itself. Pure. */
export function selfFenceDeadline(p: DeadlineParams): number {
  return p.lastContactMs + Math.ceil((p.quorumLossMs + p.watchdogMs) * (1 + (p.maxDrift ?? 0))) + (p.marginMs ?? 2000);
}

/** The formula with its numbers, for the proof text. Pure. */
export function describeDeadline(p: DeadlineParams): string {
  const drift = p.maxDrift ? ` x ${(1 + p.maxDrift).toFixed(3)} drift` : "";
  return `last contact + (quorum loss ${s(p.quorumLossMs)} + watchdog ${s(p.watchdogMs)})${drift} + margin ${s(p.marginMs ?? 2000)}` +
    ` = ${s(selfFenceDeadline(p) - p.lastContactMs)} after last contact`;
}

export interface WaitOptions {
  /** wake at least this often to check the abort signal; default 1000 ms */
  stepMs?: number;
  signal?: AbortSignal;
}

/** Level 3: waits on `clock` until the deadline has passed. ok unless aborted first. */
export async function waitSelfFenceDeadline(p: DeadlineParams, clock: Clock, o: WaitOptions = {}): Promise<FenceProof> {
  const t0 = clock.now();
  const deadline = selfFenceDeadline(p);
  const step = o.stepMs ?? 1000;
  const since = t0 - p.lastContactMs;
  while (clock.now() < deadline) {
    if (o.signal?.aborted) {
      const left = deadline - clock.now();
      return {
        level: "deadline", ok: false, ms: Math.round(clock.now() - t0),
        detail: `self-fence deadline: ${describeDeadline(p)}; wait aborted ${s(left)} before it: not confirmed`,
      };
    }
    await clock.sleep(Math.min(step, deadline - clock.now()));
  }
  const waited = clock.now() - t0;
  return {
    level: "deadline", ok: true, ms: Math.round(waited),
    detail: `self-fence deadline passed: ${describeDeadline(p)}; last contact was ${s(since)} before the wait, waited ${s(waited)}`,
  };
}
