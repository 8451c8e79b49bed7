// test/lab/peers/breakdown.ts: one failover's steps read from the agents' events (lines of a
// real bench-peers run, 2026-12-06 run 1: node1 powered off, node2 took MySQL, Redis and the VIP).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { breakdown, breakdownLine } from "../lab/peers/breakdown.ts";

const LINES = `
  1166 node3 failover failover of mysql from node1 started: node1 is lost (no heartbeat for 1211 ms); steps confirmLost, confirmFence
  1167 node3 failover failover of redis from node1 started: node1 is lost (no heartbeat for 1211 ms); steps confirmLost, confirmFence
  1668 node3 step failover mysql step confirmFence done in 502 ms: fence proof for node1: ipmi confirmed
  1669 node3 step failover redis step confirmFence done in 502 ms: fence proof for node1: ipmi confirmed
  1820 node3 step failover mysql step pickCandidate done in 152 ms: node2 (received 0-1-31)
  1820 node3 step failover redis step pickCandidate done in 152 ms: node2 (received 1889)
  1895 node3 step failover mysql step commitConfig done in 75 ms: epoch 8: mysql=node2
  1971 node3 step failover redis step commitConfig done in 151 ms: epoch 9: redis=node2
  2045 node2 lrm redis promote done in 65 ms: promoted at offset 1889 (assigned redis in epoch 9)
  2058 node3 lrm portal route done in 163 ms: mysql -> node2, redis -> node1, reloaded in 104.9 ms (committed epoch 8)
  2068 node2 lrm vip acquire done in 88 ms: 198.18.0.10/24 on bond0; first of 3 sent (arping -U) (assigned in epoch 9)
  2369 node3 lrm portal route done in 233 ms: mysql -> node2, redis -> node2, reloaded in 187.2 ms (committed epoch 9)
  2441 node2 lrm mysql promote done in 100 ms: promoted at 0-1-31, relay log applied in 0 ms (assigned mysql in epoch 9)
  2507 node2 lrm portal route done in 526 ms: mysql -> node2, redis -> node2, reloaded in 102 ms (committed epoch 9)`;
const EVENTS = LINES.trim().split("\n").map((l) => {
  const [, at, node, kind, detail] = /^\s*(\d+) (\S+) (\S+) (.*)$/.exec(l)!;
  return { at: Number(at), node, kind, detail };
});

const B = suite("peers breakdown");

B("redis: each step at its first event; the portal is the VIP holder's, not the first to route", () => {
  const b = breakdown(EVENTS, "redis", "node1", 3408);
  assert.equal(b, { write: 3408, started: 1167, fenced: 1669, picked: 1820, committed: 1971, candidate: "node2", promoted: 2045, vip: 2068, portal: 2507 });
});

B("mysql: its own steps, the promote on the candidate", () => {
  const b = breakdown(EVENTS, "mysql", "node1", 2880);
  assert.is(b.committed, 1895);
  assert.is(b.promoted, 2441);
  assert.is(b.portal, 2507);
});

B("another holder's failover is not this one's; missing steps print as -", () => {
  const b = breakdown(EVENTS, "redis", "node2", 1000);
  assert.is(b.started, undefined);
  assert.match(breakdownLine("redis", breakdown([], "redis", "node1", 1500)), /^redis : started -  fenced - .* write 1500$/);
});

B.run();
