// ha/poll-rate: the HA runtime reads its local resources every 250 ms while anything moves
// and every 1 s once everything has been still for 5 s.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { ClusterConfig } from "../../agent/bus/messages.ts";
import type { PeerView } from "../../agent/cluster/view.ts";
import { CALM_AFTER_MS, FAST_POLL_MS, PollRate, SLOW_POLL_MS, factsShape, unsettled, type PollRateInput } from "../../agent/ha/poll-rate.ts";

const cfg = (epoch: number, flags: Record<string, string> = {}) => ({ epoch, term: 1, members: [], assignments: {}, flags }) as unknown as ClusterConfig;
const peer = (name: string, alive = true) => ({ name, alive, lastHeardMs: 100, term: 1, role: "follower", leader: "node1", skewMs: 0 }) as PeerView;

function input(over: Partial<PollRateInput> = {}, view: Partial<PollRateInput["view"]> = {}): PollRateInput {
  return {
    view: { quorum: true, selfFenced: false, tilt: false, peers: [peer("node2"), peer("node3")], config: cfg(4), committed: cfg(4), ...view },
    busy: 0, procedures: 0, planned: 0, query: false, factsChanged: false, ...over,
  };
}

const s = suite("ha/poll-rate");

s("a still node is calm; every kind of movement names itself", () => {
  assert.is(unsettled(input()), null);
  assert.is(unsettled(input({}, { quorum: false })), "no quorum");
  assert.is(unsettled(input({}, { selfFenced: true })), "self-fenced");
  assert.is(unsettled(input({}, { tilt: true })), "TILT");
  assert.is(unsettled(input({}, { peers: [peer("node2"), peer("node3", false)] })), "node3 not heard");
  assert.is(unsettled(input({}, { config: cfg(5) })), "config not committed");
  assert.is(unsettled(input({}, { committed: cfg(4, { "fencing:node2": "x" }), config: cfg(4) })), "flag fencing:node2");
  assert.is(unsettled(input({}, { committed: cfg(4, { "switchover:mysql": "any" }) })), "flag switchover:mysql");
  // standing flags are no movement
  assert.is(unsettled(input({}, { committed: cfg(4, { ha: "disarmed", "maint:node2": "on", "failover:mysql": "1" }) })), null);
  assert.is(unsettled(input({ busy: 1 })), "local action under way");
  assert.is(unsettled(input({ procedures: 1 })), "procedure under way");
  assert.is(unsettled(input({ planned: 2 })), "local plan has actions");
  assert.is(unsettled(input({ query: true })), "query waiting");
  assert.is(unsettled(input({ factsChanged: true })), "facts changed");
});

s("fast until calm for CALM_AFTER_MS, fast again at once on movement", () => {
  const r = new PollRate(0);
  assert.is(r.step(0, input()), FAST_POLL_MS); // first sight of the epoch counts as movement
  assert.is(r.step(CALM_AFTER_MS - 1, input()), FAST_POLL_MS);
  assert.is(r.step(CALM_AFTER_MS, input()), SLOW_POLL_MS);
  assert.is(r.step(CALM_AFTER_MS + 50, input({}, { peers: [peer("node2", false), peer("node3")] })), FAST_POLL_MS);
  assert.is(r.reason, "node2 not heard");
  assert.is(r.step(2 * CALM_AFTER_MS, input()), FAST_POLL_MS);
  assert.is(r.step(3 * CALM_AFTER_MS + 50, input()), SLOW_POLL_MS);
});

s("a newly committed config makes it fast even when it is already committed everywhere", () => {
  const r = new PollRate(0);
  r.step(0, input());
  assert.is(r.step(10_000, input()), SLOW_POLL_MS);
  assert.is(r.step(10_050, input({}, { config: cfg(5), committed: cfg(5) })), FAST_POLL_MS);
  assert.is(r.reason, "config epoch 5");
  assert.is(r.step(10_050 + CALM_AFTER_MS, input({}, { config: cfg(5), committed: cfg(5) })), SLOW_POLL_MS);
});

s("a read is due one interval after the last started; a new facts shape is movement once, positions are not", () => {
  const r = new PollRate(0);
  assert.ok(r.due(0), "nothing read yet");
  r.started(0);
  r.step(100, input());
  assert.not.ok(r.due(100));
  assert.ok(r.due(FAST_POLL_MS));
  const db = { up: true, role: "primary", writable: true, received: "0-1-5", applied: "0-1-5", source: null } as const;
  const facts = (applied: string) => ({ mysql: { ...db, applied }, redis: null, portal: { mysql: "node1", redis: null }, vip: true });
  r.sawFacts(factsShape(facts("0-1-5")));
  r.step(CALM_AFTER_MS + 200, input());
  assert.is(r.reason, "facts changed", "the first shape seen is a change");
  assert.is(r.step(2 * CALM_AFTER_MS + 300, input()), SLOW_POLL_MS);
  assert.ok(r.calm);
  r.sawFacts(factsShape(facts("0-1-9"))); // only the position moved
  assert.is(r.step(2 * CALM_AFTER_MS + 350, input()), SLOW_POLL_MS);
  r.sawFacts(factsShape({ ...facts("0-1-9"), vip: false }));
  assert.is(r.step(2 * CALM_AFTER_MS + 400, input()), FAST_POLL_MS);
  assert.not.ok(r.calm);
  r.started(2 * CALM_AFTER_MS + 400);
  assert.not.ok(r.due(2 * CALM_AFTER_MS + 400 + FAST_POLL_MS - 1));
});

s.run();
