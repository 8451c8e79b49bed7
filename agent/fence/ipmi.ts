// Fence level 1 (DESIGN §5): IPMI `chassis power off`, confirmed by `chassis power status`
// reading "off". The BMC accepting the command proves nothing on its own: the proof is the
// status read afterwards, polled briefly because some BMCs take a moment to drop power.
// An unreachable BMC is no proof either way (a BMC loses power with its host): the level
// fails and fence.ts goes on to the next one. Also powers on for unfencing.
import type { FenceProof } from "../resources/types.ts";
import type { PowerState, Result } from "../hw/ipmi-parse.ts";

/** What level 1 needs from a BMC; hw/ipmi.ts's Ipmi is one. */
export interface PowerControl {
  /** "host:port", for the proof text */
  readonly bmc: string;
  powerOff(): Promise<Result<PowerState>>;
  powerOn(): Promise<Result<PowerState>>;
  powerStatus(): Promise<Result<PowerState>>;
}

/** Monotonic time and waiting, injected (STYLE: no clock of its own). */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface PowerConfirmOptions {
  clock: Clock;
  /** how long to keep reading `power status` after the command; default 3000 ms */
  confirmMs?: number;
  /** between status reads; default 250 ms */
  pollMs?: number;
  /** once aborted, the command is not sent (an answer already on its way is still read) */
  signal?: AbortSignal;
}

/**
 * `chassis power <want>`, then `chassis power status` until it reads `want` or `confirmMs`
 * has passed. ok only when a status read said `want`. A failed command ends the attempt.
 */
export async function setPowerConfirmed(power: PowerControl, want: PowerState, o: PowerConfirmOptions): Promise<FenceProof> {
  const { clock } = o;
  const confirmMs = o.confirmMs ?? 3000;
  const pollMs = o.pollMs ?? 250;
  const t0 = clock.now();
  const proof = (ok: boolean, detail: string): FenceProof => ({ level: "ipmi", ok, detail, ms: Math.round(clock.now() - t0) });
  const cmd = `chassis power ${want} on ${power.bmc}`;

  if (o.signal?.aborted) return proof(false, `${cmd} not sent: called off: not confirmed`);
  const sent = await power[want === "off" ? "powerOff" : "powerOn"]();
  // A BMC that did not take the command is no use for fencing: a status read would only cost
  // another timeout, and if the power did go off, level 2 confirms within milliseconds.
  if (!sent.ok) return proof(false, `${cmd} failed (${sent.error}): not confirmed`);
  let reads = 0;
  let last: Result<PowerState>;
  for (;;) {
    last = await power.powerStatus();
    reads++;
    if (last.ok && last.value === want) return proof(true, `${cmd}; power status: ${want} (${reads} read${reads > 1 ? "s" : ""})`);
    if (clock.now() - t0 + pollMs > confirmMs) break;
    await clock.sleep(pollMs);
  }
  const seen = last.ok ? `power status still ${last.value}` : `power status failed (${last.error})`;
  return proof(false, `${cmd}; ${seen} after ${Math.round(clock.now() - t0)} ms (${reads} reads): not confirmed`);
}

/** Level 1: power off, confirmed by power status = off. */
export function fenceByIpmi(power: PowerControl, o: PowerConfirmOptions): Promise<FenceProof> {
  return setPowerConfirmed(power, "off", o);
}
