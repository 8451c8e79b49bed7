// The node holding both primaries is lost: the leader's two failovers (MySQL, Redis) change the
// register in one epoch (agent/ha/commits.ts), so that each node's portal reloads once for
// both. HaManager driven step by step, its commits applied to the register as the cluster would.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { ClusterConfig, Command, DbReport } from "../../agent/bus/messages.ts";
import { applyCommand } from "../../agent/cluster/register.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import { DEFAULT_HA_TIMING, HaManager, type Report } from "../../agent/ha/manager.ts";

const NODES = ["node1", "node2", "node3"];
const db = (role: DbReport["role"], pos: string, inst: string): DbReport =>
  ({ up: true, role, writable: role === "primary", received: pos, applied: pos, source: role === "replica" ? "node1" : null, heldOut: null, inst });

function run(redisPos: { node2: string; node3: string }) {
  let cfg: ClusterConfig = {
    epoch: 5, term: 2, members: NODES.map((name) => ({ name, bus: `${name}:1883` })),
    assignments: { mysql: "node1", redis: "node1", vip: "node1" }, flags: { "inst:mysql": "m1", "inst:redis": "r1" },
  };
  const commits: Command[] = [];
  const m = new HaManager("node2", DEFAULT_HA_TIMING, { event: () => undefined });
  for (let now = 10_000; now < 30_000; now += 50) {
    const view: NodeView = {
      node: "node2", role: "leader", term: 2, leader: "node2", quorum: true, lease: true, acting: true, current: true, tilt: false, selfFenced: false, member: true,
      config: cfg, committed: cfg, counters: {},
      peers: [{ name: "node1", alive: false, lastHeardMs: now - 2000, term: 2, role: "follower" as const, leader: "node2", skewMs: 0 },
        { name: "node3", alive: true, lastHeardMs: 50, term: 2, role: "follower" as const, leader: "node2", skewMs: 0 }],
    };
    const moved = (svc: "mysql" | "redis", n: string) => cfg.assignments[svc] === n;
    const rep = (n: "node2" | "node3"): Report => ({
      at: now, r: {
        v: 1, t: "res", mysql: db(moved("mysql", n) ? "primary" : "replica", "0-1-9", `m-${n}`),
        redis: db(moved("redis", n) ? "primary" : "replica", redisPos[n], `r-${n}`),
        portal: { mysql: cfg.assignments.mysql ?? null, redis: cfg.assignments.redis ?? null }, vip: cfg.assignments.vip === n, selfFenced: false,
      },
    });
    const reports = new Map<string, Report>([["node2", rep("node2")], ["node3", rep("node3")]]);
    const acts = m.tick({ now, wall: now, view, reports, cmp: (_s, a, b) => (a === b ? 0 : Number(a.split("-").at(-1)) - Number(b.split("-").at(-1))), probes: new Map([["node1", { okAt: null, failAt: now }]]) });
    for (const a of acts) {
      if (a.kind === "commit") {
        commits.push(a.cmd);
        const next = applyCommand(cfg, a.cmd, cfg.term);
        if (typeof next !== "string") cfg = { ...next, epoch: cfg.epoch + 1 };
        m.commitDone(typeof next !== "string", typeof next === "string" ? next : undefined, a.own);
      } else if (a.kind === "fence") m.fenceDone(a.node, true, [{ level: "ipmi", ok: true, detail: "chassis power off; power status: off", ms: 300 }], now, a.id);
    }
    if (!m.busy().length && cfg.assignments.mysql !== "node1" && cfg.assignments.redis !== "node1") break;
  }
  return { cfg, commits, failovers: commits.filter((c) => c.op === "apply" && /failover of/.test(c.why)) };
}

const s = suite("ha: the failovers of one lost node commit together");
s("MySQL and Redis of a powered-off node: one epoch moves both, with the fence proof once", () => {
  const { cfg, failovers } = run({ node2: "100", node3: "100" });
  assert.equal([cfg.assignments.mysql, cfg.assignments.redis, cfg.assignments.vip], ["node2", "node2", "node2"]);
  assert.is(failovers.length, 1, failovers.map((c) => (c as { why: string }).why).join(" | "));
  const c = failovers[0] as Extract<Command, { op: "apply" }>;
  assert.match(c.why, /^failover of mysql from node1 to node2; failover of redis from node1 to node2$/);
  assert.equal(c.assign, { mysql: "node2", vip: "node2", redis: "node2" });
  assert.is(c.flags!["fenced:node1"], "ipmi: chassis power off; power status: off");
  assert.ok("failover:mysql" in c.flags! && "failover:redis" in c.flags!);
});
s("each service still goes to its own most advanced replica", () => {
  const { cfg, failovers } = run({ node2: "100", node3: "140" });
  assert.equal([cfg.assignments.mysql, cfg.assignments.redis], ["node2", "node3"]);
  assert.is(failovers.length, 1);
  assert.equal((failovers[0] as Extract<Command, { op: "apply" }>).assign, { mysql: "node2", vip: "node2", redis: "node3" });
});
s.run();
