// mergeOwnCommits (agent/ha/commits.ts): the procedures' own commits of one manager step in one
// register change where they agree.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mergeOwnCommits } from "../../agent/ha/commits.ts";

const s = suite("ha: one register change for the failovers of one lost node");
type A = { kind: string; cmd?: unknown; own?: boolean; node?: string };
const mysql = { kind: "commit", own: true, cmd: { op: "apply", why: "failover of mysql from node1 to node2", assign: { mysql: "node2", vip: "node2" }, flags: { "inst:mysql": "m2", "fencing:node1": null, "fenced:node1": "ipmi off", "failover:mysql": "100" } } };
const redis = { kind: "commit", own: true, cmd: { op: "apply", why: "failover of redis from node1 to node3", assign: { redis: "node3" }, flags: { "inst:redis": "r3", "fencing:node1": null, "fenced:node1": "ipmi off", "failover:redis": "100" } } };

s("two agreeing failover commits become one, other actions kept in order", () => {
  const out = mergeOwnCommits<A>([{ kind: "query" }, mysql, { kind: "fence", node: "node3" }, redis]);
  assert.equal(out.map((a) => a.kind), ["query", "commit", "fence"]);
  assert.equal(out[1]!.cmd, {
    op: "apply", why: "failover of mysql from node1 to node2; failover of redis from node1 to node3",
    assign: { mysql: "node2", vip: "node2", redis: "node3" },
    flags: { "inst:mysql": "m2", "fencing:node1": null, "fenced:node1": "ipmi off", "failover:mysql": "100", "inst:redis": "r3", "failover:redis": "100" },
  });
  assert.is(out[1]!.own, true);
  assert.equal(mysql.cmd.assign, { mysql: "node2", vip: "node2" }, "the inputs are not changed");
});

s("a flag or an assignment set to two values: not merged, each its own commit", () => {
  const other = { ...redis, cmd: { ...redis.cmd, flags: { ...redis.cmd.flags, "fenced:node1": "switch ports down" } } };
  assert.is(mergeOwnCommits<A>([mysql, other]).length, 2);
  const vip = { ...redis, cmd: { ...redis.cmd, assign: { redis: "node3", vip: "node3" } } };
  assert.is(mergeOwnCommits<A>([mysql, vip]).length, 2);
});

s("commits that are not a procedure's own (placement, clean-ups) stay apart", () => {
  const place = { kind: "commit", own: false, cmd: { op: "apply", why: "initial placement of redis", assign: { redis: "node1" } } };
  assert.equal(mergeOwnCommits<A>([place, mysql]).map((a) => a.own), [false, true]);
  assert.equal(mergeOwnCommits<A>([mysql]), [mysql]);
  assert.equal(mergeOwnCommits<A>([]), []);
});

s("only the commits the caller picks (the manager: failovers) are merged", () => {
  const picked = new Set<object>([mysql]);
  const out = mergeOwnCommits<A>([mysql, redis], (a) => picked.has(a));
  assert.equal(out.map((a) => (a.cmd as { why: string }).why), [mysql.cmd.why, redis.cmd.why]);
  picked.add(redis);
  assert.is(mergeOwnCommits<A>([mysql, redis], (a) => picked.has(a)).length, 1);
});

s("a long why is cut to the bus's 200 characters", () => {
  const long = (n: number) => ({ ...redis, cmd: { ...redis.cmd, why: "x".repeat(n) } });
  const out = mergeOwnCommits<A>([long(150), { ...long(120), cmd: { op: "apply", why: "y".repeat(120), flags: { a: "1" } } }]);
  assert.is((out[0]!.cmd as { why: string }).why.length, 200);
  assert.match((out[0]!.cmd as { why: string }).why, /\.\.\.$/);
});

s.run();
