// Topic map and wire codec: round trips, every reject reason, and no throw on random bytes.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { DecodeStats, decode, decodeJson, encode, formatPath } from "../../agent/bus/codec.ts";
import { MAX_PAYLOAD, type Message } from "../../agent/bus/messages.ts";
import { brokerUrl } from "../../agent/bus/mqtt.ts";
import { buildTopic, parseTopic, subscriptionsFor, type Topic } from "../../agent/bus/topics.ts";

const cfg = { term: 2, epoch: 7 };
const SAMPLES: Message[] = [
  {
    v: 1, t: "hb", term: 3, role: "leader", leader: "node1", cfg, committed: 7, quorum: true, tilt: false, wall: 1.7e12, seq: 9,
    config: { epoch: 7, term: 2, members: [{ name: "node1", bus: "10.0.0.1:1883" }], assignments: { mysql: "node1" }, flags: {} }, commit: cfg,
  },
  { v: 1, t: "ack", term: 3, seq: 9, cfg },
  { v: 1, t: "vote", pre: true, term: 4, cfg },
  { v: 1, t: "voted", pre: false, term: 4, granted: false, leaseWait: 1500, reason: "already voted" },
  { v: 1, t: "cmd", id: "c-1", cmd: { op: "add", member: { name: "node4", bus: "10.0.0.4:1883" } } },
  { v: 1, t: "cmd-result", id: "c-1", status: "error", error: "not leader" },
];

/** mulberry32: a small seeded PRNG, so a failing fuzz run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const topics = suite("topics");

topics("build and parse round-trip every kind", () => {
  const cases: Topic[] = [
    { cluster: "port-a", node: "node1", kind: "hb" },
    { cluster: "port-a", node: "node1", kind: "state" },
    { cluster: "port-a", node: "node1", kind: "config" },
    { cluster: "port-a", node: "node1", kind: "event" },
    { cluster: "port-a", node: "node1", kind: "metrics" },
    { cluster: "port-a", node: "n-2", kind: "rpc", to: "node3" },
    { cluster: "c", node: "node1", kind: "alarm", id: "temp.cpu:0" },
  ];
  for (const t of cases) assert.equal(parseTopic(buildTopic(t)), t);
  assert.is(buildTopic(cases[5]!), "bollard/v1/port-a/n-2/rpc/node3");
  assert.is(buildTopic(cases[0]!), "bollard/v1/port-a/node1/hb");
});

topics("parse returns null for anything else", () => {
  const bad = [
    "", "bollard/v1/c/node1", "bollard/v1/c/node1/hb/x", "bollard/v2/c/node1/hb", "other/v1/c/node1/hb",
    "/bollard/v1/c/node1/hb", "bollard/v1/c/node1/hb/", "bollard/v1/c/node1/rpc", "bollard/v1/c/node1/alarm",
    "bollard/v1/c/node1/nope", "bollard/v1/c/node1/rpc/Node2", "bollard/v1/c/node1/rpc/+", "bollard/v1/c/node1/alarm/a b",
    "bollard/v1/c/Node1/hb", "bollard/v1/c/1node/hb", "bollard/v1/c/-x/hb", "bollard/v1/c//hb", "bollard/v1/c/+/hb",
    "bollard/v1/c/#/hb", `bollard/v1/c/${"a".repeat(32)}/hb`, "bollard/v1/C/node1/hb", "bollard/v1//node1/hb",
    "bollard/v1/c/node1\u0000/hb", "bollard/v1/c/node1/hb/extra/more",
  ];
  for (const t of bad) assert.is(parseTopic(t), null, t);
  assert.is(parseTopic(`bollard/v1/c/${"a".repeat(31)}/hb`)?.node, "a".repeat(31));
});

topics("build throws on a bad name, naming the part", () => {
  assert.throws(() => buildTopic({ cluster: "c", node: "Node1", kind: "hb" }), /node: expected a node name/);
  assert.throws(() => buildTopic({ cluster: "c/x", node: "node1", kind: "hb" }), /cluster:/);
  assert.throws(() => buildTopic({ cluster: "c", node: "node1", kind: "rpc" }), /to: expected/);
  assert.throws(() => buildTopic({ cluster: "c", node: "node1", kind: "alarm", id: "a/b" }), /id: expected/);
  assert.throws(() => buildTopic({ cluster: "c", node: "node1", kind: "x" as "hb" }), /kind: expected/);
});

topics("subscriptions: hb, rpc to self, state, config, readiness and alarms of every node, and joiners' requests", () => {
  assert.equal(subscriptionsFor("c", "node2"), [
    { topic: "bollard/v1/c/+/hb", qos: 0 },
    { topic: "bollard/v1/c/+/rpc/node2", qos: 1 },
    { topic: "bollard/v1/c/+/state", qos: 1 },
    { topic: "bollard/v1/c/+/config", qos: 1 },
    { topic: "bollard/v1/c/+/ready", qos: 1 },
    { topic: "bollard/v1/c/+/alarm/+", qos: 1 },
    { topic: "bollard/v1/c/join/+/+", qos: 1 },
  ]);
});

topics("join topics: a joiner's request names the joiner; a leader's answer is under its prefix", () => {
  assert.equal(parseTopic("bollard/v1/c/join/node4/hello"), { cluster: "c", node: "node4", kind: "join-req", step: "hello" });
  assert.equal(parseTopic("bollard/v1/c/node1/join/node4"), { cluster: "c", node: "node1", kind: "join", to: "node4" });
  assert.is(parseTopic("bollard/v1/c/join/node4/other"), null);
  assert.is(parseTopic("bollard/v1/c/join/Bad!/hello"), null);
  assert.is(buildTopic({ cluster: "c", node: "node4", kind: "join-req", step: "proof" }), "bollard/v1/c/join/node4/proof");
});

topics("broker addresses", () => {
  assert.is(brokerUrl("127.0.1.2:1883"), "mqtt://127.0.1.2:1883");
  assert.is(brokerUrl("node-2.lan:18830"), "mqtt://node-2.lan:18830");
  assert.is(brokerUrl("[fd00::2]:1883"), "mqtt://[fd00::2]:1883");
  for (const b of ["127.0.0.1", "h:0", "h:65536", "mqtt://h:1", "h:1/x", ":1883", "fd00::2:1883"]) assert.is(brokerUrl(b), null, b);
});

topics.run();

const codec = suite("codec");

codec("every message type survives encode and decode", () => {
  for (const m of SAMPLES) assert.equal(decode(encode(m)), { ok: true, msg: m });
  assert.equal(decode(JSON.stringify(SAMPLES[1])), { ok: true, msg: SAMPLES[1] });
});

codec("too-large: counted in bytes, before parsing", () => {
  const big = JSON.stringify({ v: 1, t: "ack", pad: "é".repeat(MAX_PAYLOAD / 2) });
  const r = decode(big);
  assert.is(r.ok, false);
  if (!r.ok) {
    assert.is(r.reason, "too-large");
    assert.match(r.error, `expected at most ${MAX_PAYLOAD} bytes`);
  }
  const edge = Buffer.alloc(MAX_PAYLOAD + 1, 0x20);
  assert.is((decode(edge) as { reason: string }).reason, "too-large");
  assert.is((decode(Buffer.alloc(MAX_PAYLOAD, 0x20)) as { reason: string }).reason, "not-json");
});

codec("not-json: garbage, empty, invalid UTF-8", () => {
  for (const p of ["hello", "", "{", Buffer.from([0x7b, 0xff, 0x7d]), Buffer.from('{"v":1,"t":"\xc3"}', "latin1")]) {
    const r = decode(p);
    assert.is(r.ok ? "ok" : r.reason, "not-json", String(p));
  }
  const r = decode(Buffer.from([0xff, 0xfe]));
  assert.ok(!r.ok && /UTF-8/.test(r.error));
});

codec("wrong-version: checked before the schema", () => {
  const cases: [unknown, string][] = [
    [{ ...SAMPLES[1], v: 2 }, "v: expected 1, got 2"],
    [{ t: "ack" }, "v: expected 1, got none"],
    [{ v: "1", t: "ack" }, 'v: expected 1, got "1"'],
  ];
  for (const [body, error] of cases) assert.equal(decode(JSON.stringify(body)), { ok: false, reason: "wrong-version", error });
});

codec("schema: the error names the path and what was expected", () => {
  const err = (body: unknown) => {
    const r = decode(JSON.stringify(body));
    assert.is(r.ok ? "ok" : r.reason, "schema", JSON.stringify(body));
    return r.ok ? "" : r.error;
  };
  assert.match(err([1, 2]), "(root): expected an object, got an array");
  assert.match(err(null), "(root): expected an object, got null");
  assert.match(err({ v: 1, t: "nope" }), /^t: .*Expected 'hb' \| 'ack'/);
  assert.match(err({ ...SAMPLES[1], term: "3" }), "term: Invalid input: expected number, received string");
  assert.match(err({ ...SAMPLES[2], term: -1 }), "term: Too small: expected number to be >=0, got -1");
  assert.match(err({ ...SAMPLES[1], extra: 1 }), '(root): Unrecognized key: "extra"');
  assert.match(err({ v: 1, t: "cmd", id: "x", cmd: { op: "assign", service: "mysql", node: "BAD" } }), 'cmd.node: expected a node name (a-z, 0-9, -; not \"join\"), got "BAD"');
  const hb = SAMPLES[0] as Extract<Message, { t: "hb" }>;
  assert.match(err({ ...hb, config: { ...hb.config, members: [{ name: "node1", bus: "x" }] } }), "config.members[0].bus: Too small");
  assert.match(err({ v: 1, t: "hb" }), /; and \d+ more$/);
});

codec("decodeJson: size and JSON only", () => {
  assert.equal(decodeJson('{"role":"leader"}'), { ok: true, body: { role: "leader" } });
  assert.is((decodeJson("nope") as { reason: string }).reason, "not-json");
  assert.is((decodeJson(Buffer.alloc(MAX_PAYLOAD + 1)) as { reason: string }).reason, "too-large");
});

codec("formatPath", () => {
  assert.is(formatPath([]), "(root)");
  assert.is(formatPath(["config", "members", 0, "bus"]), "config.members[0].bus");
  assert.is(formatPath([0, "a"]), "[0].a");
});

codec("never throws: 2000 random byte strings and 2000 mutated messages", () => {
  const seed = Number(process.env.SEED ?? 0x5eed);
  const rnd = prng(seed);
  const reasons = new Set(["too-large", "not-json", "wrong-version", "schema"]);
  const seen: Record<string, number> = {};
  const check = (p: Buffer) => {
    let r;
    try {
      r = decode(p);
    } catch (e) {
      assert.unreachable(`decode threw on ${p.toString("hex").slice(0, 200)} (replay: SEED=${seed}): ${String(e)}`);
    }
    const k = r!.ok ? "ok" : r!.reason;
    assert.ok(k === "ok" || reasons.has(k));
    if (!r!.ok) assert.type(r!.error, "string");
    seen[k] = (seen[k] ?? 0) + 1;
  };
  for (let i = 0; i < 2000; i++) {
    const n = rnd() < 0.01 ? MAX_PAYLOAD + 1 : Math.floor(rnd() * 256);
    const b = Buffer.alloc(n);
    for (let j = 0; j < n; j++) b[j] = Math.floor(rnd() * 256);
    check(b);
  }
  // Random bytes are almost never JSON; mutate valid messages to reach the schema checks.
  const alphabet = Buffer.from('{}[]":,0123456789-.eEtrufalsn \\"vt');
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(encode(SAMPLES[Math.floor(rnd() * SAMPLES.length)]!));
    for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) b[Math.floor(rnd() * b.length)] = alphabet[Math.floor(rnd() * alphabet.length)]!;
    check(b);
  }
  console.log(`  fuzz seed ${seed}: ${JSON.stringify(seen)}`);
  assert.ok((seen["schema"] ?? 0) > 0 && (seen["not-json"] ?? 0) > 0);
});

codec.run();

const stats = suite("DecodeStats");

stats("counts by reason and sender; logs once per sender per minute", () => {
  let t = 1000;
  const s = new DecodeStats(() => t);
  assert.equal(s.reject("node1", "schema"), { log: true, suppressed: 0 });
  assert.equal(s.reject("node1", "not-json"), { log: false });
  assert.equal(s.reject("node2", "schema"), { log: true, suppressed: 0 });
  t += 59_999;
  assert.equal(s.reject("node1", "wrong-sender"), { log: false });
  t += 1;
  assert.equal(s.reject("node1", "schema"), { log: true, suppressed: 2 });
  assert.equal(s.byReason(), { "too-large": 0, "not-json": 1, "wrong-version": 0, schema: 3, "wrong-sender": 1, "bad-topic": 0 });
  assert.equal(s.bySender(), { node1: 4, node2: 1 });
  assert.is(s.total(), 5);
});

stats("senders beyond the bound are counted together", () => {
  const s = new DecodeStats(() => 0);
  for (let i = 0; i < 100; i++) s.reject(`n${i}`, "schema");
  const by = s.bySender();
  assert.is(Object.keys(by).length, 65);
  assert.is(by["(other)"], 36);
  assert.is(s.total(), 100);
});

stats.run();
