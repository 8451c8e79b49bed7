// Forwarded alarm acks (alarms/remote-ack.ts): node1 asks node2 to acknowledge an alarm that
// node2 raised; node2's AlarmService applies it (history, retained payload, notification)
// and answers. Messages cross a fake wire through the real codec (encode, decode: the schema
// check every received message gets); timers are fakes fired by hand, so nothing here waits.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import { AlarmHistory, parseAlarmPayload } from "../../agent/alarms/history.ts";
import { ACK_TIMEOUT_MS, RemoteAck } from "../../agent/alarms/remote-ack.ts";
import { AlarmService } from "../../agent/alarms/service.ts";
import type { Readings, Transition } from "../../agent/alarms/types.ts";
import { decode, encode } from "../../agent/bus/codec.ts";
import type { AlarmAckResp, Message } from "../../agent/bus/messages.ts";
import { MqttBus } from "../../agent/bus/mqtt.ts";
import type { Logger } from "../../agent/env/env.ts";

const ID = "port-down:switchB:swp1";
const T_ACK = 1_750_000_060_000;
/** node2's readings: its port to switchB is down */
const DOWN: Readings = {
  node: "node2",
  switches: [{ switch: "switchB", reachable: true, ports: [{ port: "swp1", node: "node2", nic: "eth1", oper: "down", admin: "up" }] }],
};

function logger() {
  const lines: string[] = [];
  const log: Logger = { debug() {}, info() {}, warn: (m) => void lines.push(`warn ${m}`), error: (m) => void lines.push(`error ${m}`), child: () => log };
  return { log, lines };
}

function fixture() {
  const dir = mkdtempSync(join(tmpdir(), "bollard-remote-ack-"));
  const cfg = defaultAlarmsConfig();
  const published: [string, string][] = [];
  const notified: Transition[] = [];
  const svc = new AlarmService(cfg, "node2", new AlarmHistory(dir, { ...cfg.history, fsync: false }), { publish: (id, p) => void published.push([id, p]), notify: (ts) => void notified.push(...ts) }, logger().log);
  svc.start();
  svc.step(T_ACK - 60_000, DOWN);
  published.length = 0;
  notified.length = 0;

  const wire: { from: string; to: string; msg: Message }[] = [];
  const timers: { ms: number; fn: () => void; cancelled: boolean }[] = [];
  const fakeTimers = { after: (ms: number, fn: () => void) => { const t = { ms, fn, cancelled: false }; timers.push(t); return { cancel: () => void (t.cancelled = true) }; } };
  let seq = 0;
  const l1 = logger();
  const l2 = logger();
  const node = (self: string, log: Logger, ack: (id: string, who: string) => ReturnType<AlarmService["ack"]>) =>
    new RemoteAck({ self, send: (to, msg) => void wire.push({ from: self, to, msg }), ack, timers: fakeTimers, newId: () => `${self}-${++seq}`, log });
  const n1 = node("node1", l1.log, () => ({ ok: false, error: "node1 raised nothing" }));
  const n2 = node("node2", l2.log, (id, who) => svc.ack(id, who, T_ACK));
  const peers: Record<string, RemoteAck> = { node1: n1, node2: n2 };
  /** delivers what is on the wire, through the codec, until nothing is left; returns what crossed */
  const deliver = () => {
    const crossed: string[] = [];
    while (wire.length) {
      const { from, to, msg } = wire.shift()!;
      const d = decode(encode(msg));
      if (!d.ok) throw new Error(`${msg.t} from ${from} does not pass the schema: ${d.error}`);
      crossed.push(`${from}->${to} ${msg.t}`);
      peers[to]!.receive(from, d.msg);
    }
    return crossed;
  };
  const fire = () => {
    for (const t of timers.splice(0)) if (!t.cancelled) t.fn();
  };
  const settled = async <T>(p: Promise<T>) => {
    let v: T | undefined;
    let done = false;
    void p.then((x) => { v = x; done = true; });
    for (let i = 0; i < 5; i++) await Promise.resolve();
    return done ? v! : "pending";
  };
  return { dir, svc, published, notified, wire, timers, n1, n2, l1, l2, deliver, fire, settled };
}

type F = ReturnType<typeof fixture>;
const S = suite<{ f: F }>("RemoteAck: acks of another node's alarms");
S.before.each((ctx) => {
  ctx.f = fixture();
});
S.after.each((ctx) => rmSync(ctx.f.dir, { recursive: true, force: true }));

S("node2 applies node1's ack: raised -> acknowledged with who and when, history, retained payload, webhooks, answer", async ({ f }) => {
  const p = f.n1.forward(ID, "ops@node1", ["node2"]);
  assert.equal(f.deliver(), ["node1->node2 alarm-ack", "node2->node1 alarm-acked"]);
  assert.equal(await f.settled(p), { acked: [{ node: "node2", ackedBy: "ops@node1", ackedAt: T_ACK }], errors: [] });
  const a = f.svc.engine.get(ID)!;
  assert.equal([a.state, a.ackedBy, a.ackedAt], ["acknowledged", "ops@node1", T_ACK]);
  assert.equal(f.notified.map((t) => [t.kind, t.alarm.id]), [["acked", ID]]);
  assert.equal(f.published.map(([id]) => id), [ID]);
  const retained = parseAlarmPayload(f.published[0]![1], "node2", ID);
  assert.ok(retained.ok && retained.value?.ackedBy === "ops@node1", "the retained alarm says who acknowledged it");
  assert.equal(f.svc.history.read().records.map((r) => r.kind), ["raised", "acked"]);
  assert.equal(f.n2.counters, { sent: 0, answered: 1, refused: 0, timeouts: 0, rejected: 0 });
  assert.equal(f.n1.counters, { sent: 1, answered: 0, refused: 0, timeouts: 0, rejected: 0 });
  assert.ok(f.timers.every((t) => t.cancelled), "the answered request's timeout is cancelled");
});

S("acknowledging twice keeps the first who and when, and says so", async ({ f }) => {
  const first = f.n1.forward(ID, "ops@node1", ["node2"]);
  f.deliver();
  await f.settled(first);
  const second = f.n1.forward(ID, "night@node1", ["node2"]);
  f.deliver();
  assert.equal(await f.settled(second), { acked: [{ node: "node2", ackedBy: "ops@node1", ackedAt: T_ACK }], errors: [] });
  assert.equal(f.notified.length, 1, "no second transition");
});

S("an unknown id: node2 answers with an error naming it; nothing changes there", async ({ f }) => {
  const p = f.n1.forward("psu:node2:PSU9", "ops@node1", ["node2"]);
  f.deliver();
  assert.equal(await f.settled(p), { acked: [], errors: ['no active alarm "psu:node2:PSU9" on node2'] });
  assert.is(f.n2.counters.refused, 1);
  assert.equal([f.notified, f.published], [[], []]);
  assert.is(f.svc.engine.get(ID)!.state, "raised");
});

S("no answer: after the timeout the node is named as not answering; a late answer is counted and dropped", async ({ f }) => {
  const p = f.n1.forward(ID, "ops@node1", ["node2"]);
  const lost = f.wire.splice(0); // node2's broker or agent is down: the request goes nowhere
  assert.is(await f.settled(p), "pending");
  assert.equal(f.timers.map((t) => t.ms), [ACK_TIMEOUT_MS]);
  f.fire();
  const r = await f.settled(p);
  assert.ok(r !== "pending");
  assert.equal(r.acked, []);
  assert.equal(r.errors, [`node2 did not answer within ${ACK_TIMEOUT_MS} ms: it may not have acknowledged ${ID}; run "bollard alarms ack ${ID}" on node2`]);
  assert.is(f.n1.counters.timeouts, 1);
  // the request arrives after all, and its answer comes too late
  f.wire.push(...lost);
  f.deliver();
  assert.is(f.n1.counters.rejected, 1);
  assert.match(f.l1.lines.join("\n"), "dropped an alarm-acked from node2 for port-down:switchB:swp1: it answers no waiting request");
});

S("two reporters: one acknowledges, one does not answer: both reported", async ({ f }) => {
  const p = f.n1.forward(ID, "ops@node1", ["node2", "node3"]);
  f.wire.splice(f.wire.findIndex((w) => w.to === "node3"), 1);
  f.deliver();
  assert.is(await f.settled(p), "pending");
  f.fire();
  const r = await f.settled(p);
  assert.ok(r !== "pending");
  assert.equal(r.acked.map((a) => a.node), ["node2"]);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0]!, /^node3 did not answer within/);
});

S("answers that fit no request: another node's, another alarm's, ok without who: counted, never applied", async ({ f }) => {
  const p = f.n1.forward(ID, "ops@node1", ["node2"]);
  const req = f.wire.shift()!.msg as { id: string };
  const answer = (o: Partial<AlarmAckResp>): AlarmAckResp => ({ v: 1, t: "alarm-acked", id: req.id, alarm: ID, status: "ok", ackedBy: "x@y", ackedAt: 5, ...o });
  f.n1.receive("node3", answer({}));
  f.n1.receive("node2", answer({ alarm: "psu:node2:PSU1" }));
  assert.is(await f.settled(p), "pending", "still waiting for node2's answer about its alarm");
  assert.is(f.n1.counters.rejected, 2);
  f.n1.receive("node2", answer({ ackedBy: null }));
  const r = await f.settled(p);
  assert.ok(r !== "pending");
  assert.equal(r, { acked: [], errors: [`node2 answered "ok" without saying who acknowledged ${ID}`] });
  assert.is(f.n1.counters.rejected, 3);
  const log = f.l1.lines.join("\n");
  assert.match(log, "the request went to node2");
  assert.match(log, "the request was for alarm port-down:switchB:swp1");
  assert.match(log, 'status "ok" without ackedBy and ackedAt');
});

S("an engine that throws is answered as an error, not a crash", async ({ f }) => {
  const wire: Message[] = [];
  const n = new RemoteAck({ self: "node2", send: (_t, m) => void wire.push(m), ack: () => { throw new Error("disk gone"); }, timers: { after: () => ({ cancel() {} }) }, newId: () => "x", log: logger().log });
  n.receive("node1", { v: 1, t: "alarm-ack", id: "r1", alarm: ID, who: "ops" });
  assert.equal(wire, [{ v: 1, t: "alarm-acked", id: "r1", alarm: ID, status: "error", ackedBy: null, ackedAt: null, error: "acknowledging failed on node2: disk gone" }]);
  void f;
});

S("stopping settles what still waits", async ({ f }) => {
  const p = f.n1.forward(ID, "ops@node1", ["node2"]);
  f.n1.stop();
  assert.equal(await f.settled(p), { acked: [], errors: ["node2: not answered: this agent is stopping"] });
  assert.ok(f.timers.every((t) => t.cancelled));
});

S.run();

// ---- malformed requests and answers on the bus ------------------------------------------

const B = suite("alarm-ack on the bus: malformed messages");

B("rejected by the bus with an error naming the field, counted, never delivered", () => {
  const { log, lines } = logger();
  const bus = new MqttBus({ cluster: "c", node: "node2", username: "node2", password: "x", brokers: [{ name: "node1", bus: "127.0.1.1:1883" }, { name: "node2", bus: "127.0.1.2:1883" }], log, now: () => 0 });
  const got: Message[] = [];
  bus.onMessage((_f, m) => void got.push(m));
  const send = (body: unknown, from = "node1") => bus.ingest(from, `bollard/v1/c/${from}/rpc/node2`, Buffer.from(typeof body === "string" ? body : JSON.stringify(body)));
  const ok = { v: 1, t: "alarm-ack", id: "r1", alarm: ID, who: "ops@node1" };
  send({ ...ok, alarm: "bad id/with slash" }, "node1");
  send({ ...ok, who: "ops\u0007" }, "node3");
  send({ ...ok, extra: 1 }, "node4");
  send({ v: 1, t: "alarm-acked", id: "r1", alarm: ID, status: "maybe", ackedBy: null, ackedAt: null }, "node5");
  send({ ...ok, v: 2 }, "node6");
  send('{"v":1,"t":"alarm-ack"', "node7");
  const s = bus.stats();
  assert.equal([s.rejects.schema, s.rejects["wrong-version"], s.rejects["not-json"]], [4, 1, 1]);
  assert.equal(got, []);
  const text = lines.join("\n");
  assert.match(text, 'schema: alarm: expected an alarm id ([A-Za-z0-9._:-], 1-128), got "bad id/with slash"');
  assert.match(text, "schema: who: expected 1-100 printable ASCII characters");
  assert.match(text, 'schema: (root): Unrecognized key: "extra"');
  assert.match(text, 'schema: status: Invalid option: expected one of "ok"|"error", got "maybe"');
  send(ok);
  assert.equal(got, [ok], "a well-formed request is delivered");
});

B.run();
