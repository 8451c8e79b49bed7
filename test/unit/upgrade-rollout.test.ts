// The rollout's runbook (agent/upgrade/rollout.ts) against a fake cluster on a virtual clock:
// the order of the steps on each node, and a failed gate: rollback asked, maintenance taken
// off only once the node is back, the event that says why, the nodes never reached.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { DbReport } from "../../agent/bus/messages.ts";
import type { NodeFacts } from "../../agent/upgrade/gate.ts";
import { DEFAULTS, rollout, type Api, type Info } from "../../agent/upgrade/rollout.ts";

const NEW = "c".repeat(64);
const OLD = "d".repeat(64);

/** Three nodes, MySQL and Redis on `holder`; a node told to switch runs `NEW` 2 s later (or never: `broken`). */
class FakeCluster {
  now = 0;
  bundle: Record<string, string> = { node1: OLD, node2: OLD, node3: OLD };
  step: Record<string, { step: string; sha?: string; why?: string }> = { node1: { step: "idle" }, node2: { step: "idle" }, node3: { step: "idle" } };
  down: Record<string, number> = {};
  flags: Record<string, string> = {};
  holder = "node1";
  log: string[] = [];
  events: { detail: string; fields?: Record<string, unknown> }[] = [];
  pos = 100;
  constructor(readonly leader: string, readonly broken = false) {}

  private report(n: string, svc: "mysql" | "redis"): DbReport {
    const p = svc === "mysql" ? `0-1-${this.pos}` : String(this.pos);
    return n === this.holder
      ? { up: true, role: "primary", writable: true, received: p, applied: p, source: null, heldOut: null }
      : { up: true, role: "replica", writable: false, received: p, applied: p, source: this.holder, heldOut: null, recvAgoMs: 50 };
  }

  info(): Info {
    this.pos++;
    const members = ["node1", "node2", "node3"];
    const nodes: NodeFacts[] = members.map((n) => ({
      node: n, heard: !(n in this.down), version: null, bundle: this.bundle[n]!, quorum: true, leader: this.leader, upgrade: this.step[n]!,
    }));
    return {
      self: "node3", leader: this.leader, members, nodes, procedures: [],
      replicas: Object.fromEntries(members.map((n) => [n, { mysql: this.report(n, "mysql"), redis: this.report(n, "redis") }])),
      assignments: { mysql: this.holder, redis: this.holder, vip: this.holder },
    };
  }

  api(): Api {
    return {
      info: async () => {
        for (const [n, until] of Object.entries(this.down)) if (this.now >= until) delete this.down[n];
        return this.info();
      },
      alarms: async () => [],
      offer: async () => ({ sha: NEW, version: "0.2.0", size: 1000 }),
      op: async (node, op, sha) => {
        this.log.push(`${node} ${op}`);
        if (op === "switch") {
          this.down[node] = this.broken ? Infinity : this.now + 2000;
          if (!this.broken) this.bundle[node] = sha;
          this.step[node] = { step: "trial", sha };
        }
        if (op === "bless") this.step[node] = { step: "blessed", sha };
        if (op === "rollback") {
          this.down[node] = this.now + 1000; // back on the old bundle a second later
          this.bundle[node] = OLD;
        }
        return { status: "ok" };
      },
      flags: async (_why, f) => {
        for (const [k, v] of Object.entries(f)) {
          this.log.push(`${k} ${v ?? "off"}`);
          if (v === null) delete this.flags[k];
          else this.flags[k] = v;
          // the leader drains the node: what it holds goes to the next node by name
          const n = k.slice("maint:".length);
          if (v === "on" && this.holder === n) this.holder = ["node1", "node2", "node3"].find((x) => x !== n && !this.flags[`maint:${x}`])!;
        }
        return { status: "ok" };
      },
      report: async (r) => void (r.event && this.events.push(r.event)),
      now: () => this.now,
      sleep: async (ms) => void (this.now += ms),
      say: () => {},
    };
  }
}

const R = suite("rollout: one node at a time, the leader's last, each behind its gate");

R("a good bundle: drain, stage, switch, gate, bless, undrain on each node; the leader's node last", async () => {
  const c = new FakeCluster("node1");
  const r = await rollout(c.api(), { ...DEFAULTS, path: "/tmp/b.js" });
  assert.ok(r.ok, r.why ?? "");
  assert.equal(r.upgraded, ["node2", "node3", "node1"]);
  assert.equal(c.log, [
    "maint:node2 on", "node2 stage", "node2 switch", "node2 bless", "maint:node2 off",
    "maint:node3 on", "node3 stage", "node3 switch", "node3 bless", "maint:node3 off",
    "maint:node1 on", "node1 stage", "node1 switch", "node1 bless", "maint:node1 off",
  ]);
  assert.equal(Object.keys(r.steps.node1!), ["drain", "stage", "switch", "gate", "bless", "undrain"]);
  assert.equal(c.flags, {}, "no node left in maintenance");
  assert.is(c.holder, "node2", "the leader's node was drained last: its services moved off it");
  assert.equal(c.events.at(-1)!.fields?.rollout, "done");
});

R("a bundle whose agent never comes back: the deadline fails the gate; rollback, back on the old bundle, maintenance off, stopped", async () => {
  const c = new FakeCluster("node1", true);
  const r = await rollout(c.api(), { ...DEFAULTS, path: "/tmp/b.js", deadlineMs: 20_000 });
  assert.not.ok(r.ok);
  assert.is(r.failed, "node2");
  assert.equal(c.log, ["maint:node2 on", "node2 stage", "node2 switch", "node2 rollback", "maint:node2 off"], "node3 and node1 never touched");
  assert.match(r.why ?? "", /STOPPED at node2: not healthy by the deadline: node2 is not heard; back on its old bundle \(dddddddddddd\) with quorum; not upgraded: node2, node3, node1/);
  const ev = c.events.at(-1)!;
  assert.equal([ev.fields?.failed, ev.fields?.node, ev.fields?.rollout], [true, "node2", "failed"], "the event the upgrade-failed alarm is raised from");
  assert.equal(c.flags, {});
});

R("every node already on the bundle: nothing to do", async () => {
  const c = new FakeCluster("node1");
  c.bundle = { node1: NEW, node2: NEW, node3: NEW };
  const r = await rollout(c.api(), { ...DEFAULTS, path: "/tmp/b.js" });
  assert.ok(r.ok);
  assert.equal(c.log, []);
});

R.run();
