// Bad input (issue 2 §9): at least 10 000 random and mutated payloads go through the path a
// broker's message takes (MqttBus.ingest: topic and sender checks, codec) into the cluster
// core and the alarm-ack handler. None may crash anything, none may change the core's state
// or acknowledge an alarm, and each is counted.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { RemoteAck } from "../../agent/alarms/remote-ack.ts";
import { decode, encode } from "../../agent/bus/codec.ts";
import type { Message } from "../../agent/bus/messages.ts";
import { MqttBus } from "../../agent/bus/mqtt.ts";
import { ClusterNode } from "../../agent/cluster/node.ts";
import { bootstrapConfig } from "../../agent/cluster/register.ts";
import { DEFAULT_TIMING } from "../../agent/cluster/timing.ts";
import type { CoreEnv, Logger } from "../../agent/env/env.ts";
import { rng } from "../sim/rng.ts";
import { MemStore } from "../sim/world.ts";

const SEED = Number(process.env.SEED ?? 20261122);
const PER_KIND = Number(process.env.FUZZ_PER_KIND ?? 1700);
const C = "fuzz";
const members = ["node1", "node2", "node3"].map((name) => ({ name, bus: `127.0.1.${name.slice(-1)}:1883` }));

function setup() {
  const errors: string[] = [];
  const log: Logger = { debug() {}, info() {}, warn() {}, error: (m) => void errors.push(m), child: () => log };
  const store = new MemStore();
  let now = 10_000;
  const sent: Message[] = [];
  const env: CoreEnv = { now: () => now, wall: () => 1.7e12 + now, random: () => 0.5, nonce: () => "0".repeat(32), send: (_to, m) => void sent.push(m), store, log, event() {} };
  const core = new ClusterNode(env, "node1", DEFAULT_TIMING, bootstrapConfig(members));
  core.start();
  const bus = new MqttBus({ cluster: C, node: "node1", username: "node1", password: "x", brokers: members, log, now: () => now });
  bus.onMessage((from, m) => core.receive(from, m));
  const acks: string[] = [];
  const remoteAck = new RemoteAck({
    self: "node1", send: (to, m) => void acks.push(`sent ${m.t} to ${to}`), ack: (id) => (acks.push(`applied ${id}`), { ok: false, error: "none" }),
    timers: { after: () => ({ cancel() {} }) }, newId: () => "x", log,
  });
  bus.onMessage((from, m) => remoteAck.receive(from, m));
  // A live cluster: node2 leads term 3 with config epoch 4.
  const config = { epoch: 4, term: 3, members, assignments: { mysql: "node2" }, flags: {} };
  const hb: Message = { v: 1, t: "hb", term: 3, role: "leader", leader: "node2", cfg: { term: 3, epoch: 4 }, committed: 4, quorum: true, tilt: false, wall: 0, seq: 1, config, commit: { term: 3, epoch: 4 } };
  bus.ingest("node2", `bollard/v1/${C}/node2/hb`, encode(hb));
  now += 50;
  core.tick();
  return { core, bus, store, errors, acks, valid: hb, advance: (ms: number) => (now += ms) };
}

/** What must not change: everything the core shows but its counters and clocks. */
function snapshot(core: ClusterNode, store: MemStore): string {
  const { counters: _c, peers, ...rest } = core.view();
  return JSON.stringify({ rest, peers: peers.map(({ lastHeardMs: _l, ...p }) => p), saved: store.state, saves: store.saves });
}

const samples: Message[] = [
  { v: 1, t: "hb", term: 3, role: "follower", leader: "node2", cfg: { term: 3, epoch: 4 }, committed: 4, quorum: true, tilt: false, wall: 5 },
  { v: 1, t: "ack", term: 3, seq: 9, cfg: { term: 3, epoch: 4 } },
  { v: 1, t: "vote", pre: true, term: 4, cfg: { term: 3, epoch: 4 } },
  { v: 1, t: "voted", pre: false, term: 3, granted: true, leaseWait: 0 },
  { v: 1, t: "cmd", id: "x-1", cmd: { op: "assign", service: "mysql", node: "node3" } },
  { v: 1, t: "cmd-result", id: "x-1", status: "ok", epoch: 5 },
  { v: 1, t: "alarm-ack", id: "r-1", alarm: "psu:node1:PSU2", who: "ops@node2" },
  { v: 1, t: "alarm-acked", id: "r-1", alarm: "psu:node2:PSU2", status: "ok", ackedBy: "ops@node1", ackedAt: 1 },
];

const s = suite("fuzz: bad payloads through bus and core");

s("10 000+ bad payloads: no crash, no state change, each counted", () => {
  const { core, bus, store, errors, acks, valid } = setup();
  const r = rng(SEED);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T,>(a: readonly T[]): T => a[int(a.length)];
  const before = snapshot(core, store);
  const weird = [null, true, -1, 1.5, 1e308, "", "x".repeat(300), [], {}, [1, 2], { a: 1 }, "node2", 2 ** 53];
  const topicOf = (n = "node2", kind = "hb") => `bollard/v1/${C}/${n}/${kind}`;
  const rpc = (n = "node2") => `bollard/v1/${C}/${n}/rpc/node1`;

  const mutate = () => {
    const m = structuredClone(pick(samples)) as Record<string, unknown>;
    const keys = Object.keys(m).filter((k) => k !== "v");
    const k = pick(keys);
    switch (int(4)) {
      case 0: delete m[k]; break;
      case 1: m[k] = pick(weird); break;
      case 2: m[`x${int(99)}`] = pick(weird); break;
      default: m.t = pick(["hb", "ack", "vote", "voted", "cmd", "cmd-result", "alarm-ack", "alarm-acked", "join", "", 7]);
    }
    return { from: "node2", topic: m.t === "hb" ? topicOf() : rpc(), payload: Buffer.from(JSON.stringify(m)) };
  };

  const kinds: Record<string, () => { from: string; topic: string; payload: Buffer }> = {
    "random bytes": () => ({ from: "node2", topic: rpc(), payload: Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256))) }),
    "truncated json": () => {
      const t = JSON.stringify(pick(samples));
      return { from: "node2", topic: rpc(), payload: Buffer.from(t.slice(0, int(t.length - 1))) };
    },
    "wrong schema": () => {
      // A mutation can land on another valid message (wall: -1 is a fine wall clock): those
      // are not bad input, so draw again until the codec refuses it.
      for (;;) {
        const b = mutate();
        if (!decode(b.payload).ok) return b;
      }
    },
    "wrong version": () => {
      const m = { ...pick(samples), v: pick([0, 2, "1", null, 1.0001, -1, [1]]) } as Record<string, unknown>;
      if (r() < 0.2) delete m.v;
      return { from: "node2", topic: rpc(), payload: Buffer.from(JSON.stringify(m)) };
    },
    oversized: () => {
      const m = { ...samples[0], pad: "x".repeat(64 * 1024 + int(4096)) };
      return { from: "node2", topic: topicOf(), payload: Buffer.from(JSON.stringify(m)) };
    },
    "wrong sender": () => {
      const payload = encode(pick(samples));
      return pick([
        { from: "node2", topic: topicOf("node3"), payload }, // another node's prefix on node2's broker
        { from: "node3", topic: topicOf("node1"), payload }, // our own prefix, published by someone else
        { from: "node2", topic: `bollard/v1/${C}/node2/rpc/node3`, payload }, // addressed to another node
        { from: "node2", topic: `bollard/v1/other/node2/hb`, payload }, // another cluster
        { from: "node2", topic: `bollard/v1/${C}/Node2!/hb`, payload }, // not a node name
        { from: "node2", topic: `bollard/v2/${C}/node2/hb`, payload }, // another protocol version
      ]);
    },
    "inconsistent claims": () => {
      // Schema-valid, but the body contradicts its sender: a heartbeat claiming another node leads.
      const m = { ...valid, term: 3 + int(5), leader: pick(["node1", "node3", "mallory"]) } as Message;
      return { from: "node2", topic: topicOf(), payload: encode(m) };
    },
  };

  let total = 0;
  const perKind: Record<string, number> = {};
  for (const [name, gen] of Object.entries(kinds)) {
    let n = 0;
    for (let i = 0; i < PER_KIND; i++) {
      const { from, topic, payload } = gen();
      const rej = bus.stats();
      const coreRej = Object.entries(core.counters).filter(([k]) => k.startsWith("reject.")).reduce((a, [, v]) => a + v, 0);
      const sentBefore = rej.delivered;
      bus.ingest(from, topic, payload);
      const after = bus.stats();
      const coreAfter = Object.entries(core.counters).filter(([k]) => k.startsWith("reject.")).reduce((a, [, v]) => a + v, 0);
      const busCounted = Object.values(after.rejects).reduce((a, b) => a + b, 0) - Object.values(rej.rejects).reduce((a, b) => a + b, 0);
      if (after.delivered > sentBefore && coreAfter === coreRej) {
        // A mutation that happened to produce a valid message for a valid topic: not bad input.
        assert.unreachable(`a ${name} payload was delivered and accepted: ${payload.toString().slice(0, 200)}`);
      }
      assert.is(busCounted + (coreAfter - coreRej), 1, `a ${name} payload must be counted exactly once`);
      n++;
    }
    perKind[name] = n;
    total += n;
  }
  assert.equal(errors, [], "no handler crashed (the bus logs a throwing handler at error level)");
  assert.is(snapshot(core, store), before, "the core's state did not change");
  assert.equal(acks, [], "no alarm ack was applied or answered");
  assert.ok(total >= 10_000, `at least 10 000 payloads (got ${total})`);
  const st = bus.stats();
  console.log(`fuzz: ${total} bad payloads (seed ${SEED}); bus rejects ${JSON.stringify(st.rejects)}; core rejects ${JSON.stringify(Object.fromEntries(Object.entries(core.counters).filter(([k]) => k.startsWith("reject."))))}`);
  console.log(`fuzz: by kind ${JSON.stringify(perKind)}`);
});

s.run();
