// The image rollout's sequence (agent/upgrade/image-rollout.ts) against a fake cluster on a
// virtual clock: the bundle rollout's order (others by name, the leader's node last; the
// driver's own node after them), each node drained before its image upgrade, maintenance off
// after its verdict; a node whose new root is given up stops the rollout with an event.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { DbReport } from "../../agent/bus/messages.ts";
import type { NodeFacts } from "../../agent/upgrade/gate.ts";
import { imageRollout, nodeVerdict, planImageRollout } from "../../agent/upgrade/image-rollout.ts";
import type { Api, Info } from "../../agent/upgrade/rollout.ts";

const NEW = "0.2.0", OLD = "0.1.0", SHA = "e".repeat(64);
type Img = NonNullable<NodeFacts["image"]>;
const MEMBERS = ["node1", "node2", "node3"];

/** A node asked to upgrade its image is not heard 5 s later, heard again 60 s later on the new root (or back on the old: `broken`). */
class Fake {
  now = 0;
  image: Record<string, Img> = Object.fromEntries(MEMBERS.map((n) => [n, { slot: "a", version: OLD, last: null }]));
  down: Record<string, [number, number]> = {};
  flags: Record<string, string> = {};
  holder = "node1";
  log: string[] = [];
  events: string[] = [];
  constructor(readonly self: string, readonly leader: string, readonly broken: string | null = null) {}

  private report(n: string): DbReport {
    return n === this.holder ? { up: true, role: "primary", writable: true, received: "1", applied: "1", source: null, heldOut: null }
      : { up: true, role: "replica", writable: false, received: "1", applied: "1", source: this.holder, heldOut: null, recvAgoMs: 50 };
  }

  info(): Info {
    const nodes: NodeFacts[] = MEMBERS.map((n) => {
      const d = this.down[n];
      return { node: n, heard: !(d && this.now >= d[0] && this.now < d[1]), version: null, bundle: "b", quorum: true, leader: this.leader, upgrade: { step: "idle" }, image: this.image[n]! };
    });
    return { self: this.self, leader: this.leader, members: MEMBERS, nodes, procedures: [], assignments: { mysql: this.holder, redis: this.holder, vip: this.holder },
      replicas: Object.fromEntries(MEMBERS.map((n) => [n, { mysql: this.report(n), redis: this.report(n) }])) };
  }

  api(): Api {
    return {
      info: async () => this.info(),
      alarms: async () => [],
      offer: async () => { throw new Error("not for images"); },
      op: async (node, op, sha, extra) => {
        this.log.push(`${node} ${op} ${extra?.path}`);
        assert.is(sha, SHA);
        this.down[node] = [this.now + 5000, this.now + 60_000];
        this.pending.push([this.now + 60_000, node]); // what it reports once back: sleep() applies it
        return { status: "ok" };
      },
      flags: async (_why, f) => {
        for (const [k, v] of Object.entries(f)) {
          this.log.push(`${k} ${v ?? "off"}`);
          if (v === null) delete this.flags[k];
          else this.flags[k] = v;
          const n = k.slice("maint:".length);
          if (v === "on" && this.holder === n) this.holder = MEMBERS.find((x) => x !== n && !this.flags[`maint:${x}`])!;
        }
        return { status: "ok" };
      },
      report: async (r) => void (r.event && this.events.push(r.event.detail)),
      now: () => this.now,
      sleep: async (ms) => {
        this.now += ms;
        for (const [at, n] of this.pending.splice(0)) {
          if (this.now < at) { this.pending.push([at, n]); continue; }
          this.image[n] = n === this.broken
            ? { slot: "a", version: OLD, last: { step: "rolled-back", version: NEW, slot: "b", why: "health gate failed: no quorum" } }
            : { slot: "b", version: NEW, last: { step: "blessed", version: NEW, slot: "b", why: "health gate passed: held 3 s" } };
        }
      },
      say: () => undefined,
    };
  }
  pending: [number, string][] = [];
}

const O = { path: "/var/tmp/new.img", version: NEW, sha: SHA, deadlineMs: 600_000, nodeTimeoutMs: 900_000, drainTimeoutMs: 60_000, pollMs: 250 };

const R = suite("image rollout: the bundle rollout's sequence");

R("the driver on the leader's node: node1, node2, then itself; each drained first, maintenance off after its verdict", async () => {
  const f = new Fake("node3", "node3");
  const selfCalls: number[] = [];
  const r = await imageRollout(f.api(), O, async () => { selfCalls.push(f.now); return 0; });
  assert.ok(r.ok, r.why ?? "");
  assert.equal(r.upgraded, ["node1", "node2"]);
  assert.equal(f.log, ["maint:node1 on", "node1 image /var/tmp/new.img", "maint:node1 off", "maint:node2 on", "node2 image /var/tmp/new.img", "maint:node2 off", "maint:node3 on"]);
  assert.is(selfCalls.length, 1, "this node's own upgrade runs last, once");
  assert.match(r.why!, /node3 \(this node\) reboots/);
  assert.ok(r.steps.node1!.image! >= 60_000, "node1's verdict came before it was back");
  assert.match(f.events.join("\n"), /node1 upgraded to image 0\.2\.0/);
});

R("a node whose new root is given up stops the rollout: maintenance off, an event that says why, the rest untouched", async () => {
  const f = new Fake("node3", "node3", "node1");
  let self = 0;
  const r = await imageRollout(f.api(), O, async () => ++self);
  assert.not.ok(r.ok);
  assert.is(r.failed, "node1");
  assert.is(self, 0);
  assert.equal(f.log, ["maint:node1 on", "node1 image /var/tmp/new.img", "maint:node1 off"]);
  assert.match(r.why!, /STOPPED at node1: rolled back to its old root by itself: health gate failed: no quorum; not upgraded: node1, node2, node3/);
  assert.match(f.events.at(-1)!, /STOPPED at node1/);
});

R("plan: leader last, the driver's node after it (with a note); refusals", () => {
  const nodes = (img: (n: string) => Img | null) => MEMBERS.map((n): NodeFacts => ({ node: n, heard: true, version: null, bundle: "b", quorum: true, leader: "node2", upgrade: { step: "idle" }, image: img(n) }));
  const old = nodes(() => ({ slot: "a", version: OLD, last: null }));
  const p = planImageRollout(NEW, "node1", MEMBERS, "node2", old);
  assert.equal(p.order, ["node3", "node2", "node1"]);
  assert.match(p.note!, /run it on node2/);
  assert.equal(planImageRollout(NEW, "node2", MEMBERS, "node2", old).order, ["node1", "node3", "node2"]);
  assert.equal(planImageRollout(NEW, "node2", MEMBERS, "node2", nodes((n) => ({ slot: "b", version: n === "node3" ? OLD : NEW, last: null }))).order, ["node3"]);
  assert.match(planImageRollout(NEW, "node1", ["node1"], "node1", old).refuse!, /one-node cluster .*--this-node/);
  assert.match(planImageRollout(NEW, "node1", MEMBERS, "node2", nodes((n) => (n === "node3" ? null : { slot: "a", version: OLD, last: null }))).refuse!, /node3 does not run from a bollard image/);
  assert.match(planImageRollout(NEW, "node1", MEMBERS, null, old).refuse!, /no leader/);
});

R("a node's verdict: blessed on the new version, rolled back with quorum; nothing while unheard or older", () => {
  const n = (image: Img, heard = true): NodeFacts => ({ node: "node1", heard, version: null, bundle: null, quorum: true, leader: "node2", image });
  assert.equal(nodeVerdict(n({ slot: "b", version: NEW, last: { step: "blessed", version: NEW, slot: "b", why: "ok" } }), NEW), { ok: true, why: "ok" });
  assert.is(nodeVerdict(n({ slot: "b", version: NEW, last: { step: "blessed", version: NEW, slot: "b", why: "ok" } }, false), NEW), null);
  assert.is(nodeVerdict(n({ slot: "a", version: OLD, last: { step: "blessed", version: OLD, slot: "a", why: "earlier" } }), NEW), null);
  assert.is(nodeVerdict(n({ slot: "b", version: NEW, last: { step: "trial", version: NEW, slot: "b", why: "gate runs" } }), NEW), null);
  assert.is(nodeVerdict(n({ slot: "a", version: OLD, last: { step: "rolled-back", version: NEW, slot: "b", why: "x" } }), NEW)!.ok, false);
});

R.run();
