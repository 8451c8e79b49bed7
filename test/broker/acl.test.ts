// The bus against real Mosquitto brokers (harness.ts): delivery, the ACL's refusals, the
// sender check, rejects by reason, reconnection. Each suite starts its own brokers and ends
// by checking that none of their processes is left.
import mqtt, { type MqttClient } from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import type { Message } from "../../agent/bus/messages.ts";
import { MqttBus, type MqttBusOptions } from "../../agent/bus/mqtt.ts";
import { type BrokerHarness, CLI_USER, pidAlive, startBrokers } from "./harness.ts";

interface Line { level: string; ns: string; msg: string; fields?: Record<string, unknown> }

function memLog(lines: Line[], ns = "test"): Logger {
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, ns, msg, fields });
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (n) => memLog(lines, `${ns}.${n}`) };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every 5 ms; resolves with the ms it took, rejects after `ms`. */
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
  return performance.now() - t0;
}

const hb = (leader: string, term = 1): Message => ({
  v: 1, t: "hb", term, role: "leader", leader, cfg: { term: 1, epoch: 1 }, committed: 1, quorum: true, tilt: false, wall: 0,
});
const ack = (seq: number): Message => ({ v: 1, t: "ack", term: 1, seq, cfg: { term: 1, epoch: 1 } });
const vote = (term: number): Message => ({ v: 1, t: "vote", pre: true, term, cfg: { term: 1, epoch: 1 } });

interface Node { bus: MqttBus; got: [string, Message][]; retained: [string, string, unknown][]; lines: Line[] }

function newNode(h: BrokerHarness, node: string, over: Partial<MqttBusOptions> = {}): Node {
  const lines: Line[] = [];
  const bus = new MqttBus({
    cluster: h.cluster, node, ...h.credentials(node), brokers: h.members(), log: memLog(lines, node), now: () => performance.now(), ...over,
  });
  const n: Node = { bus, got: [], retained: [], lines };
  bus.onMessage((from, msg) => n.got.push([from, msg]));
  bus.onRetained((from, kind, body) => n.retained.push([from, kind, body]));
  bus.start();
  return n;
}

const allUp = (n: Node) => n.bus.stats().brokers.every((b) => b.connected);
const up = (n: Node, broker: string) => n.bus.stats().brokers.find((b) => b.name === broker)?.connected === true;

function raw(h: BrokerHarness, user: string, broker: string): Promise<MqttClient> {
  const c = mqtt.connect(h.url(broker), { protocolVersion: 5, ...h.clientOptions(user, broker), reconnectPeriod: 0, connectTimeout: 2000 });
  return new Promise((resolve, reject) => {
    c.once("connect", () => {
      c.on("error", () => {}); // errors after connect show up in the publish callbacks
      resolve(c);
    });
    c.once("error", reject);
  });
}

/** QoS 1 publish; resolves with the MQTT5 PUBACK failure code, or 0. */
function pub(c: MqttClient, topic: string, payload: string | Buffer): Promise<number> {
  return new Promise((resolve) => c.publish(topic, payload, { qos: 1 }, (err) => resolve(err ? Number((err as { code?: number }).code ?? -1) : 0)));
}

/** Stops buses, clients and brokers; asserts that no broker process is left. */
async function cleanup(h: BrokerHarness | undefined, nodes: Node[], clients: MqttClient[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.bus.stop()));
  await Promise.all(clients.map((c) => c.endAsync(true)));
  nodes.length = 0;
  clients.length = 0;
  if (!h) return;
  await h.stop();
  const alive = h.pids().filter(pidAlive);
  assert.equal(alive, [], `mosquitto PIDs left: ${alive.join(" ")}`);
}

// ---------------------------------------------------------------------------------------
const delivery = suite("bus: delivery between three brokers");
{
  let h: BrokerHarness;
  const n: Node[] = [];
  delivery.before(async () => {
    h = await startBrokers({ nodes: 3 });
    for (const name of ["node1", "node2", "node3"]) n.push(newNode(h, name));
    await waitFor(() => n.every(allUp), 5000, "all buses connected to all brokers");
  });
  delivery.after(() => cleanup(h, n, []));

  delivery("hb from node1 reaches node2 and node3 with from=node1, and not node1", async () => {
    n[0]!.bus.send("*", hb("node1"));
    await waitFor(() => n[1]!.got.length === 1 && n[2]!.got.length === 1, 2000, "hb at node2 and node3");
    assert.equal(n[1]!.got[0], ["node1", hb("node1")]);
    assert.equal(n[2]!.got[0], ["node1", hb("node1")]);
    await sleep(100);
    assert.is(n[0]!.got.length, 0, "no echo of our own publish (No Local)");
  });

  delivery("rpc to node2 arrives only at node2", async () => {
    for (const x of n) x.got.length = 0;
    n[0]!.bus.send("node2", ack(1));
    await waitFor(() => n[1]!.got.length === 1, 2000, "ack at node2");
    assert.equal(n[1]!.got[0], ["node1", ack(1)]);
    await sleep(150);
    assert.is(n[0]!.got.length + n[2]!.got.length, 0);
  });

  delivery("a broadcast vote reaches every other node, once each", async () => {
    for (const x of n) x.got.length = 0;
    const v = vote(2);
    n[2]!.bus.send("*", v);
    await waitFor(() => n[0]!.got.length === 1 && n[1]!.got.length === 1, 2000, "vote at node1 and node2");
    await sleep(100);
    assert.equal([n[0]!.got, n[1]!.got, n[2]!.got], [[["node3", v]], [["node3", v]], []]);
  });

  delivery("retained state reaches peers, and a bus that starts later", async () => {
    n[0]!.bus.publishRetained("state", { role: "leader", term: 1 });
    await waitFor(() => n[1]!.retained.length === 1, 2000, "state at node2");
    assert.equal(n[1]!.retained[0], ["node1", "state", { role: "leader", term: 1 }]);
    await n[2]!.bus.stop();
    n[2] = newNode(h, "node3");
    await waitFor(() => n[2]!.retained.some((r) => r[0] === "node1"), 3000, "retained state at a restarted node3");
    assert.equal(n[2]!.retained.find((r) => r[0] === "node1"), ["node1", "state", { role: "leader", term: 1 }]);
  });

  delivery("setBrokers drops and re-adds a member's broker", async () => {
    const b = n[0]!.bus;
    b.setBrokers(h.members().filter((m) => m.name !== "node3"));
    assert.equal(b.stats().brokers.map((x) => x.name), ["node1", "node2"]);
    b.setBrokers(h.members());
    await waitFor(() => allUp(n[0]!), 3000, "node1 connected to all three again");
    for (const x of n) x.got.length = 0;
    n[2]!.bus.send("node1", ack(7));
    await waitFor(() => n[0]!.got.length === 1, 2000, "ack from node3 over the re-added broker");
  });

  delivery("leaves no broker process behind", () => cleanup(h, n, []));
  delivery.run();
}

// ---------------------------------------------------------------------------------------
const acl = suite("acl: each node writes only its own prefix (MQTT5 reason code 135)");
{
  let h: BrokerHarness;
  const n: Node[] = [];
  const clients: MqttClient[] = [];
  acl.before(async () => {
    h = await startBrokers({ nodes: 3 });
    n.push(newNode(h, "node2"), newNode(h, "node3"));
    await waitFor(() => n.every(allUp), 5000, "buses connected");
  });
  acl.after(() => cleanup(h, n, clients));

  acl("node1 publishing under node2's prefix is refused and reaches no one", async () => {
    const spy = await raw(h, CLI_USER, "node1");
    const node1 = await raw(h, "node1", "node1");
    clients.push(spy, node1);
    const seen: string[] = [];
    spy.on("message", (t) => seen.push(t));
    await spy.subscribeAsync("bollard/v1/#", { qos: 1 });
    const before = n.map((x) => x.bus.stats().received);
    assert.is(await pub(node1, `bollard/v1/${h.cluster}/node2/hb`, JSON.stringify(hb("node2"))), 135);
    assert.is(await pub(node1, `bollard/v1/${h.cluster}/node1/hb`, JSON.stringify(hb("node1"))), 0);
    await waitFor(() => seen.length === 1, 2000, "the allowed publish at the spy");
    await waitFor(() => n.every((x, i) => x.bus.stats().received === before[i]! + 1), 2000, "the allowed publish at the buses");
    assert.equal(seen, [`bollard/v1/${h.cluster}/node1/hb`]);
    assert.equal(n.map((x) => x.got), [[["node1", hb("node1")]], [["node1", hb("node1")]]]);
  });

  acl("the CLI user may not write at all, not even under its own name", async () => {
    const cli = await raw(h, CLI_USER, "node1");
    clients.push(cli);
    assert.is(await pub(cli, `bollard/v1/${h.cluster}/${CLI_USER}/hb`, "{}"), 135);
    assert.is(await pub(cli, `bollard/v1/${h.cluster}/node1/hb`, "{}"), 135);
  });

  acl("a bus whose credentials are not its node's counts and logs the refusal", async () => {
    // node1's name, node2's credentials: the broker refuses node1's prefix.
    const wrong = newNode(h, "node1", { ...h.credentials("node2") });
    n.push(wrong);
    await waitFor(() => up(wrong, "node1"), 3000, "misconfigured bus connected");
    // a QoS 1 rpc (a vote): only those get a PUBACK, hence a reason code; an ack goes at QoS 0
    // (docs/bus.md) and the broker drops a denied one silently
    wrong.bus.send("node3", vote(2));
    await waitFor(() => wrong.bus.stats().refused === 1, 2000, "refusal counted");
    const err = wrong.lines.find((l) => l.level === "error" && /refused publish/.test(l.msg));
    assert.ok(err && err.fields?.reasonCode === 135, JSON.stringify(wrong.lines.filter((l) => l.level !== "debug")));
    wrong.bus.send("node3", ack(1));
    await sleep(100);
    assert.is(wrong.bus.stats().refused, 1, "a denied QoS 0 ack is not seen as refused");
    assert.is(n[1]!.got.filter(([, m]) => m.t === "vote" || m.t === "ack").length, 0);
  });

  acl("leaves no broker process behind", () => cleanup(h, n, clients));
  acl.run();
}

// ---------------------------------------------------------------------------------------
const rejects = suite("bus: rejects are counted by reason, logged once per sender, never delivered");
{
  let h: BrokerHarness;
  const n: Node[] = [];
  const clients: MqttClient[] = [];
  rejects.before(async () => {
    h = await startBrokers({ nodes: 3 });
    n.push(newNode(h, "node2"), newNode(h, "node3"));
    await waitFor(() => n.every(allUp), 5000, "buses connected");
  });
  rejects.after(() => cleanup(h, n, clients));

  rejects("malformed payloads on node1's own topic: not-json, wrong-version, schema, too-large", async () => {
    const node1 = await raw(h, "node1", "node1");
    clients.push(node1);
    const topic = `bollard/v1/${h.cluster}/node1/hb`;
    for (const p of ["not json", JSON.stringify({ ...hb("node1"), v: 2 }), JSON.stringify({ v: 1, t: "hb" }), "x".repeat(70 * 1024)]) {
      assert.is(await pub(node1, topic, p), 0);
    }
    await waitFor(() => n.every((x) => x.bus.stats().rejectsBySender["node1"] === 4), 3000, "4 rejects at each bus");
    for (const x of n) {
      const s = x.bus.stats();
      assert.equal(s.rejects, { "too-large": 1, "not-json": 1, "wrong-version": 1, schema: 1, "wrong-sender": 0, "bad-topic": 0 });
      assert.is(s.delivered, 0);
      assert.is(x.got.length, 0);
      const warns = x.lines.filter((l) => l.level === "warn" && /dropped a message/.test(l.msg));
      assert.is(warns.length, 1, "logged once per sender per minute");
      assert.match(warns[0]!.msg, "not-json");
    }
    assert.is(await pub(node1, topic, JSON.stringify(hb("node1"))), 0);
    await waitFor(() => n.every((x) => x.got.length === 1), 2000, "a valid hb after the rejects");
  });

  rejects("wrong-sender: node1's topic arriving on node2's broker is dropped", async () => {
    const node1at2 = await raw(h, "node1", "node2"); // the ACL allows node1's prefix on any broker
    clients.push(node1at2);
    for (const x of n) x.got.length = 0;
    assert.is(await pub(node1at2, `bollard/v1/${h.cluster}/node1/hb`, JSON.stringify(hb("node1"))), 0);
    await waitFor(() => n.every((x) => x.bus.stats().rejects["wrong-sender"] === 1), 2000, "wrong-sender at each bus");
    assert.equal(n[1]!.bus.stats().rejectsBySender, { node1: 4, node2: 1 });
    const warn = n[1]!.lines.find((l) => l.level === "warn" && /wrong-sender/.test(l.msg));
    assert.match(warn?.msg ?? "", 'names node "node1" but arrived on broker "node2"');
    await sleep(100);
    assert.equal(n.map((x) => x.got.length), [0, 0]);
  });

  rejects("leaves no broker process behind", () => cleanup(h, n, clients));
  rejects.run();
}

// ---------------------------------------------------------------------------------------
const reconnect = suite("bus: a broker stops and starts again");
{
  let h: BrokerHarness;
  const n: Node[] = [];
  reconnect.before(async () => {
    h = await startBrokers({ nodes: 3 });
    n.push(newNode(h, "node1"), newNode(h, "node2"));
    await waitFor(() => n.every(allUp), 5000, "buses connected");
    n[1]!.bus.publishRetained("config", { epoch: 3 });
    await waitFor(() => n[0]!.retained.length === 1, 2000, "node2's config at node1");
  });
  reconnect.after(() => cleanup(h, n, []));

  for (const downMs of [0, 3000]) {
    reconnect(`node1 reconnects to node2's broker after ${downMs} ms down, and hears node2 again`, async () => {
      const [a, b] = [n[0]!, n[1]!];
      const t0 = performance.now();
      await h.stopBroker("node2");
      const stopped = performance.now();
      const lostMs = await waitFor(() => !up(a, "node2"), 10_000, "node1 to see node2's broker lost");
      b.bus.send("node1", ack(1)); // own broker down: dropped, not queued, not thrown
      assert.ok(b.bus.stats().dropped >= 1);
      await sleep(downMs);
      await h.startBroker("node2");
      const backMs = await waitFor(() => up(a, "node2"), 10_000, "node1 reconnected to node2's broker");
      await waitFor(() => up(b, "node2"), 10_000, "node2 reconnected to its own broker");
      a.got.length = 0;
      b.bus.send("*", hb("node2", 5));
      await waitFor(() => a.got.length === 1, 2000, "node2's hb at node1 after the restart (resubscribed)");
      // Mosquitto runs without persistence: node2 publishes its retained config again.
      await waitFor(() => a.retained.length === 2 + (downMs ? 1 : 0), 2000, "node2's config republished");
      assert.equal(a.retained.at(-1), ["node2", "config", { epoch: 3 }]);
      const s = a.bus.stats().brokers.find((x) => x.name === "node2")!;
      console.log(`  figure: broker down ${downMs} ms: stop->lost seen ${lostMs.toFixed(0)} ms (stop took ${(stopped - t0).toFixed(0)} ms), ` +
        `listening->reconnected ${backMs.toFixed(0)} ms, lost->reconnected ${s.lastReconnectMs?.toFixed(0)} ms, reconnects ${s.reconnects}`);
      assert.ok(backMs < 10_000);
    });
  }

  reconnect("transitions are logged once each", () => {
    const lines = n[0]!.lines.filter((l) => l.level !== "debug" && /broker "node2"/.test(l.msg));
    const kinds = lines.map((l) => (/^lost/.test(l.msg) ? "lost" : /^connected/.test(l.msg) ? "connected" : "other"));
    assert.equal(kinds.filter((k) => k !== "other"), ["connected", "lost", "connected", "lost", "connected"]);
    assert.is(n[0]!.bus.stats().reconnects, 2);
  });

  reconnect("leaves no broker process behind", () => cleanup(h, n, []));
  reconnect.run();
}
