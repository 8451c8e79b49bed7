// TLS on the bus against real Mosquitto (issue 17 item 1, docs/bus.md "TLS and the trust
// model"): brokers require a certificate of the cluster CA and a password on top; agents check
// the broker's certificate (the CA, its address, the member it names). Who gets in and who
// does not, each for real.
import mqtt from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { clientTls } from "../../agent/bus/tls.ts";
import { MqttBus } from "../../agent/bus/mqtt.ts";
import { issueNodeCert, makeCa, type KeyCert } from "../../agent/provision/pki.ts";
import { type BrokerHarness, pidAlive, startBrokers } from "./harness.ts";

interface Ctx { h: BrokerHarness; other: KeyCert }
const s = suite<Ctx>("tls: brokers require a cluster certificate and a password");

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Connects once: "connected", or why not (an error, or no CONNACK within 3 s). */
async function attempt(url: string, opts: mqtt.IClientOptions): Promise<string> {
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000, ...opts });
  try {
    return await new Promise<string>((resolve) => {
      const t = setTimeout(() => resolve("no CONNACK within 3 s"), 3500);
      c.once("connect", () => { clearTimeout(t); resolve("connected"); });
      c.once("error", (e: Error & { code?: unknown }) => { clearTimeout(t); resolve(`error ${String(e.code ?? "")} ${e.message}`); });
      c.once("close", () => { clearTimeout(t); resolve("closed before CONNACK"); });
    });
  } finally {
    c.end(true);
  }
}

s.before(async (ctx) => {
  ctx.h = await startBrokers({ nodes: 2, cluster: "tls" });
  ctx.other = makeCa("tls"); // another cluster's CA, same cluster name even
});

s.after(async (ctx) => {
  await ctx.h.stop();
  assert.equal(ctx.h.pids().filter(pidAlive), [], "no mosquitto left");
});

s("a member with its certificate and password gets in", async (ctx) => {
  assert.is(await attempt(ctx.h.url("node1"), ctx.h.clientOptions("node1", "node1")), "connected");
});

s("no certificate, or plain MQTT, gets nothing, even with the right password (a sniffed password alone)", async (ctx) => {
  const { username, password, tls } = ctx.h.credentials("node1");
  const noCert = await attempt(ctx.h.url("node1"), { username, password, ca: tls!.ca, rejectUnauthorized: true });
  assert.is.not(noCert, "connected", "TLS without a client certificate");
  console.log(`  no client certificate: ${noCert}`);
  const plain = await attempt(ctx.h.url("node1").replace("mqtts:", "mqtt:"), { username, password });
  assert.is.not(plain, "connected", "plain MQTT to the TLS listener");
  console.log(`  plain MQTT: ${plain}`);
  assert.ok(/certificate|alert|handshake|closed|no CONNACK/i.test(noCert), noCert);
});

s("a certificate from another cluster's CA is refused, whatever the password", async (ctx) => {
  const { username, password } = ctx.h.credentials("node1");
  const foreign = issueNodeCert(ctx.other, { cluster: "tls", node: "node1", ips: ["127.0.1.1"] });
  // trusting our CA (so only the broker's check of the client decides)
  const r = await attempt(ctx.h.url("node1"), { username, password, ca: ctx.h.ca!.cert, cert: foreign.cert, key: foreign.key, rejectUnauthorized: true });
  assert.is.not(r, "connected");
  console.log(`  another CA's client certificate: ${r}`);
});

s("a cluster certificate with a wrong password is refused: the password still says who a client is", async (ctx) => {
  const r = await attempt(ctx.h.url("node1"), { ...ctx.h.clientOptions("node1", "node1"), password: "wrong" });
  assert.match(r, /134|135|Bad User Name or Password|Not authorized/i);
});

s("the agent refuses a broker with another CA's certificate, or one naming another member", async (ctx) => {
  const lines: string[] = [];
  const log: Logger = { debug() {}, info() {}, warn: (m) => void lines.push(`warn ${m}`), error: (m) => void lines.push(`error ${m}`), child: () => log };
  // node1 trusting only the other CA: node1's and node2's brokers are not the cluster's
  const cred = ctx.h.credentials("node1");
  const mine = issueNodeCert(ctx.other, { cluster: "tls", node: "node1", ips: ["127.0.1.1"] });
  const strange = new MqttBus({ cluster: "tls", node: "node1", username: "node1", password: cred.password, tls: { ca: ctx.other.cert, cert: mine.cert, key: mine.key }, brokers: ctx.h.members(), log, now: () => performance.now() });
  strange.start();
  // node2's broker listed under node1's name: its certificate (CN node2) does not name node1
  const swapped = new MqttBus({ cluster: "tls", node: "node1", ...cred, brokers: [{ name: "node1", bus: ctx.h.broker("node2").bus }], log, now: () => performance.now() });
  swapped.start();
  await sleep(1500);
  assert.ok(strange.stats().brokers.every((b) => !b.connected), "no broker of another CA is trusted");
  assert.ok(swapped.stats().brokers.every((b) => !b.connected), "a broker whose certificate names another member is not trusted");
  await strange.stop();
  await swapped.stop();
  const said = lines.filter((l) => l.startsWith("error"));
  console.log(`  ${said.map((l) => l.slice(0, 160)).join("\n  ")}`);
  assert.ok(said.some((l) => /certificate/i.test(l) && /expected "node1"/.test(l)), "the CN mismatch is logged at error level");
  assert.ok(said.some((l) => /self-signed|unable to (get|verify)|SELF_SIGNED|UNABLE_TO/i.test(l)), "the unknown CA is logged at error level");
});

s("a raw client checks the broker's address too (subjectAltName)", async (ctx) => {
  const { username, password, tls } = ctx.h.credentials("node1");
  // node1's certificate carries 127.0.1.1; reaching node1's broker as 127.0.0.1... is not it
  const b = ctx.h.broker("node1");
  const viaOther = await attempt(`mqtts://localhost:${b.port}`, { username, password, ...clientTls(tls!, "node1") }).catch((e) => String(e));
  assert.is.not(viaOther, "connected");
});

s.run();
