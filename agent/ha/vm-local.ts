// The local VM manager (DESIGN §5b, R5, R6): on every node, it brings the VMs this node runs,
// the replica disks it serves and the mirrors of its VMs in line with the committed register
// (vm-flags.ts). It starts a VM only while the node acts (quorum, no TILT) on the live
// leader's latest commit, and never one the register holds away from it; it kills every VM
// at once when the node self-fences or is being fenced, and any VM the register says runs
// elsewhere. Pure: it says what to do; the runtime does it, one action per VM at a time.
import type { NodeView } from "../cluster/view.ts";
import { fenceHeld } from "./flags.ts";
import { heldFrom, holderOf, migrationTo, replicaOf, restartStamp, startStamp, stoppedByOperator, syncedOn } from "./vm-flags.ts";
import type { VmCatalog, VmFacts, VmNodeFacts } from "./vm-types.ts";

export type VmLocalAction =
  /** start: with `mirror`, the guest is held (-S) until its disks are mirrored there, then continued */
  | { vm: string; do: "start"; mirror?: string; copy?: string | null; why: string }
  | { vm: string; do: "incoming" | "cont" | "pause" | "stop" | "kill" | "quit" | "export" | "unexport" | "unmirror"; why: string }
  /** mirror: `copy` is the copy of the disks `to` says it holds (an incremental rebuild needs it) */
  | { vm: string; do: "mirror"; to: string; copy?: string | null; why: string }
  | { vm: string; do: "migrate"; to: string; port: number; why: string };

export interface VmLocalInput {
  /** monotonic ms */
  now: number;
  view: NodeView;
  catalog: VmCatalog;
  /** this node's VMs, exports and storage daemon, as last read */
  facts: VmNodeFacts;
  /** a peer's latest report, or null */
  peer(node: string): VmNodeFacts | null;
  alive(node: string): boolean;
}

export interface VmLocalTiming {
  /** a VM that failed to start (or whose QEMU exited unasked) this many times is given up */
  maxFails: number;
  /** wait before the n-th start again after a failure (the last value repeats) */
  backoffMs: readonly number[];
  /** failures older than this are forgotten */
  failWindowMs: number;
}

export const DEFAULT_VM_LOCAL_TIMING: VmLocalTiming = { maxFails: 3, backoffMs: [0, 2000, 5000], failWindowMs: 600_000 };

const LIVE = new Set(["running", "paused", "incoming", "migrated"]);

interface Failures {
  n: number;
  /** local ms of the last failure */
  at: number;
  /** the operator's vm-start stamp when counted: a newer one forgets them */
  ack: number | null;
  /** the holder when counted: another holder forgets them */
  holder: string | null;
}

export class VmLocal {
  private readonly fails = new Map<string, Failures>();

  constructor(
    private readonly self: string,
    private readonly t: VmLocalTiming = DEFAULT_VM_LOCAL_TIMING,
  ) {}

  /** A start failed, or the QEMU of a VM this node should run exited without being asked to. */
  failed(vm: string, now: number, flags: Record<string, string>, holder: string | null): void {
    const f = this.failures(vm, now, flags, holder);
    this.fails.set(vm, { n: f + 1, at: now, ack: startStamp(flags, vm), holder });
  }

  /** Failures that count now (forgotten after the window, an operator's start, a new holder). */
  failures(vm: string, now: number, flags: Record<string, string>, holder: string | null): number {
    const f = this.fails.get(vm);
    if (!f) return 0;
    const ack = startStamp(flags, vm);
    if (now - f.at > this.t.failWindowMs || (ack !== null && ack !== f.ack) || f.holder !== holder) {
      this.fails.delete(vm);
      return 0;
    }
    return f.n;
  }

  gaveUp(vm: string, now: number, flags: Record<string, string>, holder: string | null): boolean {
    return this.failures(vm, now, flags, holder) >= this.t.maxFails;
  }

  plan(inp: VmLocalInput, busy: ReadonlySet<string>): VmLocalAction[] {
    const v = inp.view;
    const me = this.self;
    const cfg = v.committed;
    const out: VmLocalAction[] = [];
    const facts = new Map(inp.facts.vms.map((x) => [x.name, x]));
    // R6: a node without quorum, or one the register is fencing, holds nothing: every QEMU dies now
    const fenced = v.selfFenced ? "this node self-fenced (no quorum)" : fenceHeld(cfg.flags, me) ? "the register says this node is being fenced" : null;
    if (fenced) {
      for (const x of inp.facts.vms) if (LIVE.has(x.state)) out.push({ vm: x.name, do: "kill", why: fenced });
      return out;
    }
    // R5: act only on the live leader's latest commit; a node that lost it keeps what runs
    if (!v.acting || !v.current) return out;
    const known = new Set(inp.catalog.defs.map((d) => d.name));
    for (const x of inp.facts.vms) {
      if (!known.has(x.name) && LIVE.has(x.state) && !busy.has(x.name) && !holderOf(cfg, x.name)) out.push({ vm: x.name, do: "kill", why: `${x.name} is not defined any more and the register places it nowhere` });
    }
    for (const def of inp.catalog.defs) {
      const vm = def.name;
      if (busy.has(vm)) continue;
      const x = facts.get(vm) ?? { name: vm, state: "stopped", mirror: null, fails: 0 };
      const a = holderOf(cfg, vm) === me ? this.holder(vm, x, inp) : this.other(vm, x, inp);
      if (a) { out.push(a); continue; }
      const e = this.replica(vm, inp);
      if (e) out.push(e);
    }
    return out;
  }

  /** This node holds the VM: run it (unless stopped or held), mirror it, migrate it away. */
  private holder(vm: string, x: VmFacts, inp: VmLocalInput): VmLocalAction | null {
    const f = inp.view.committed.flags;
    const me = this.self;
    const mig = migrationTo(f, vm);
    const replica = replicaOf(f, vm);
    const synced = syncedOn(f, vm);
    if (stoppedByOperator(f, vm) || heldFrom(f, vm) === me) {
      const why = stoppedByOperator(f, vm) ? "stopped by an operator (bollard vm stop)" : "the leader moves it away from this node";
      if (x.state === "running" || x.state === "paused") return { vm, do: "stop", why };
      if (x.state === "incoming" || x.state === "migrated") return { vm, do: "kill", why };
      return null;
    }
    switch (x.state) {
      case "incoming":
        // the migration to this node was committed: the guest continues here
        if (x.incoming?.done) return { vm, do: "cont", why: "the live migration to this node is committed" };
        if (mig === me) return null;
        // committed while this node's facts were read before the stream's end: a live source that
        // reports it migrated has sent it all, so it is done here in a moment (a fresh start would
        // reboot the guest the migration kept running)
        if (this.sourceMigrated(vm, inp)) return null;
        // placed here without the migration (its source was fenced mid-way): a fresh start from the disks
        return { vm, do: "kill", why: "the migration to this node did not complete; it starts afresh from its disks" };
      case "migrated":
        // migrated away, not (yet) committed: the leader either commits the target or abandons
        // the migration; abandoned, the guest resumes here (the target never ran it)
        return mig ? null : { vm, do: "cont", why: "the migration was abandoned: the guest resumes here" };
      case "paused":
        if (x.pausedForMirror && (synced === null || synced !== x.mirror?.to)) return { vm, do: "cont", why: `the leader outdated the replica on ${x.mirror?.to ?? "?"}: the guest runs on without it` };
        return null;
      case "stopped":
      case "failed": {
        if (inp.facts.exports.includes(vm)) return { vm, do: "unexport", why: "this node runs it now: its replica disks are served no more" };
        if (this.gaveUp(vm, inp.now, f, me)) return null;
        const n = this.failures(vm, inp.now, f, me);
        const wait = n ? this.t.backoffMs[Math.min(n - 1, this.t.backoffMs.length - 1)]! : 0;
        const last = this.fails.get(vm)?.at ?? -Infinity;
        if (inp.now - last < wait) return null;
        const why = n ? `start again after ${n} failure${n > 1 ? "s" : ""}` : "the register places it on this node";
        // A replica the register calls in sync stays so only if no guest write reaches this disk
        // alone: the guest runs once the mirror is attached. Where that replica cannot be reached,
        // the guest waits until the leader has outdated it.
        if (synced && synced !== me) {
          if (!inp.alive(synced) || !inp.peer(synced)?.exports.includes(vm)) return null;
          return { vm, do: "start", mirror: synced, copy: inp.peer(synced)?.copies?.[vm] ?? null, why: `${why}; mirrored to ${synced}, its replica in sync, before the guest runs` };
        }
        return { vm, do: "start", why };
      }
      case "running": {
        const again = restartStamp(f, vm);
        if (again !== null && x.startedAt !== undefined && x.startedAt < again) return { vm, do: "stop", why: "restart asked by an operator (bollard vm restart)" };
        return this.mirror(vm, x, replica, synced, inp) ?? this.migrate(vm, x, mig, replica, synced, inp);
      }
    }
  }

  /** The holder's mirror follows vm-replica; a broken one pauses the guest while the register still calls the replica in sync. */
  private mirror(vm: string, x: VmFacts, replica: string | null, synced: string | null, inp: VmLocalInput): VmLocalAction | null {
    const m = x.mirror;
    if (!replica || replica === this.self) {
      return m ? { vm, do: "unmirror", why: m.state === "broken" ? `its mirror to ${m.to} is broken and the replica was outdated` : `no replica is assigned (was ${m.to})` } : null;
    }
    if (m && m.to !== replica) return { vm, do: "unmirror", why: `the replica moved from ${m.to} to ${replica}` };
    if (!m) {
      const p = inp.peer(replica);
      if (!inp.alive(replica) || !p?.exports.includes(vm)) return null;
      return { vm, do: "mirror", to: replica, copy: p.copies?.[vm] ?? null, why: synced === replica ? `resume the mirror to ${replica}` : `new replica on ${replica}` };
    }
    if (m.state !== "broken") return null;
    // A job that failed lets guest writes complete on this disk only: they must not be
    // acknowledged while the register still names the replica in sync (a restart there would
    // lose them), so the guest waits until the leader outdated it. A stalled target (the
    // guest's writes hang in the mirror) is not paused: pausing drains I/O, which would hang.
    if (synced === replica) return m.error?.startsWith("stalled") ? null : { vm, do: "pause", why: `its mirror to ${replica} broke (${m.error ?? "?"}): the guest waits until the leader outdated the replica` };
    return { vm, do: "unmirror", why: `its mirror to ${replica} broke and the replica was outdated: start it again` };
  }

  /** A live peer reports `vm` migrated away (postmigrate): the whole stream left it. */
  private sourceMigrated(vm: string, inp: VmLocalInput): boolean {
    return inp.view.peers.some((p) => p.name !== this.self && inp.alive(p.name) && inp.peer(p.name)?.vms.some((y) => y.name === vm && y.state === "migrated"));
  }

  /** A live migration to `mig` once its replica is there and in sync and the target waits for it. */
  private migrate(vm: string, x: VmFacts, mig: string | null, replica: string | null, synced: string | null, inp: VmLocalInput): VmLocalAction | null {
    if (!mig || mig === "any" || mig === this.self) return null;
    if (replica !== mig || synced !== mig || x.mirror?.to !== mig || x.mirror.state !== "ready") return null;
    const t = inp.peer(mig)?.vms.find((y) => y.name === vm);
    if (!inp.alive(mig) || t?.state !== "incoming" || !t.incoming || t.incoming.done) return null;
    return { vm, do: "migrate", to: mig, port: t.incoming.port, why: `live migration to ${mig} (its replica, in sync)` };
  }

  /** The register places the VM elsewhere (or nowhere): nothing of it runs here, except a migration's target. */
  private other(vm: string, x: VmFacts, inp: VmLocalInput): VmLocalAction | null {
    const f = inp.view.committed.flags;
    const holder = holderOf(inp.view.committed, vm);
    const mig = migrationTo(f, vm);
    const target = mig === this.self && holder !== null && syncedOn(f, vm) === this.self && heldFrom(f, vm) !== this.self;
    if (x.state === "incoming") return target ? null : { vm, do: "kill", why: `no migration to this node is under way (${holder ? `it runs on ${holder}` : "unplaced"})` };
    if (x.state === "migrated") {
      // kept until its new holder reports it running: while this node reports it migrated, the
      // target knows the whole stream left (sourceMigrated) even if its own facts lag behind
      const there = holder && inp.alive(holder) ? inp.peer(holder)?.vms.find((y) => y.name === vm) : null;
      if (there && there.state !== "running") return null;
      return { vm, do: "quit", why: `migrated: it runs on ${holder ?? "?"} now` };
    }
    if (x.state === "running" || x.state === "paused") return { vm, do: "kill", why: holder ? `the register places it on ${holder}` : "the register places it nowhere" };
    if (target && (x.state === "stopped" || x.state === "failed") && inp.facts.exports.includes(vm)) return { vm, do: "incoming", why: `live migration from ${holder} to this node (its replica)` };
    return null;
  }

  /** Serve the VM's disks as its replica while the register says so. */
  private replica(vm: string, inp: VmLocalInput): VmLocalAction | null {
    const f = inp.view.committed.flags;
    const serving = inp.facts.exports.includes(vm);
    const want = replicaOf(f, vm) === this.self && holderOf(inp.view.committed, vm) !== this.self;
    if (want && !serving) return inp.facts.storage ? { vm, do: "export", why: `this node is its replica (holder ${holderOf(inp.view.committed, vm) ?? "none"})` } : null;
    if (!want && serving) {
      // a migration's target keeps serving until the leader committed the move
      const x = inp.facts.vms.find((y) => y.name === vm);
      if (x?.state === "incoming") return null;
      return { vm, do: "unexport", why: replicaOf(f, vm) ? `its replica is on ${replicaOf(f, vm)} now` : "it has no replica here any more" };
    }
    return null;
  }
}
