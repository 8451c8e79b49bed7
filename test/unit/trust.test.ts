// The bus's trust (issue 17 item 1, docs/bus.md "TLS and the trust model"): a node's TLS
// files checked as its identity (in its config and its seed), the broker check a client
// makes, a founder's password rotation step by step, and the rule that only a member may
// change its own bus password. The real brokers: test/broker/tls.test.ts, rotation.test.ts.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PeerCertificate } from "node:tls";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { derivedPassword, hashMatches, mosquittoHash } from "../../agent/bus/credentials.ts";
import type { ClusterConfig, Command, Message } from "../../agent/bus/messages.ts";
import { PENDING_PASSWORD_FILE, PasswordRotation } from "../../agent/bus/rotation.ts";
import { certFacts, checkNodeTls, clientTls } from "../../agent/bus/tls.ts";
import { ClusterNode } from "../../agent/cluster/node.ts";
import { applyCommand, bootstrapConfig } from "../../agent/cluster/register.ts";
import { DEFAULT_TIMING } from "../../agent/cluster/timing.ts";
import { parseConfig } from "../../agent/config/load.ts";
import type { CoreEnv, Logger } from "../../agent/env/env.ts";
import { issueNodeCert, makeCa } from "../../agent/provision/pki.ts";
import { MemStore } from "../sim/world.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const ca = makeCa("port-fms");
const node1 = issueNodeCert(ca, { cluster: "port-fms", node: "node1", ips: ["198.18.0.11"] });
const NOW = Date.now();

// ---------------------------------------------------------------------------------------
const Tls = suite("tls: a node's key and certificates as its bus identity");

Tls("a certificate of the CA, to this node, for its broker's address, with its own key: no error", () => {
  assert.equal(checkNodeTls({ ca: ca.cert, ...node1 }, { node: "node1", ip: "198.18.0.11", now: NOW }), []);
  const f = certFacts(node1.cert);
  assert.is(f.cn, "node1");
  assert.equal(f.ips, ["198.18.0.11"]);
  assert.equal(f.dns, ["node1"]);
  assert.ok(f.notAfter > NOW + 9 * 365 * 86_400_000, "valid for about ten years");
});

Tls("each way it is not: another CA, another node, another address, another key, expired, not a CA, garbage", () => {
  const other = makeCa("port-fms");
  const foreign = issueNodeCert(other, { cluster: "port-fms", node: "node1", ips: ["198.18.0.11"] });
  const errs = (m: { ca: string; cert: string; key: string }, e: Partial<Parameters<typeof checkNodeTls>[1]> = {}) =>
    checkNodeTls(m, { node: "node1", ip: "198.18.0.11", now: NOW, ...e }).join("\n");
  assert.match(errs({ ca: ca.cert, ...foreign }), /^cert: not issued by the CA in ca \(another cluster's certificate\?\)$/);
  assert.match(errs({ ca: ca.cert, ...node1 }, { node: "node2" }), /cert: issued to "node1", expected "node2"/);
  assert.match(errs({ ca: ca.cert, ...node1 }, { ip: "198.18.0.12" }), /cert: its subjectAltName \(198\.18\.0\.11, node1\) lacks the broker address 198\.18\.0\.12/);
  assert.match(errs({ ca: ca.cert, cert: node1.cert, key: foreign.key }), /key: not the key of the certificate in cert/);
  assert.match(errs({ ca: ca.cert, ...node1 }, { now: NOW + 20 * 365 * 86_400_000 }), /cert: expired on \d{4}-/);
  assert.match(errs({ ca: node1.cert, ...node1 }), /ca: expected a CA certificate \(basicConstraints CA:TRUE\)/);
  assert.match(errs({ ca: "x", cert: "y", key: "z" }), /ca: expected a PEM certificate[\s\S]*cert: expected a PEM certificate[\s\S]*key: expected a PEM private key/);
});

Tls("the config's bus.tls: read, checked, and every error names the key and the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "bollard-tls-"));
  try {
    for (const [f, t] of [["ca.crt", ca.cert], ["node.crt", node1.cert], ["node.key", node1.key], ["other.crt", issueNodeCert(ca, { cluster: "port-fms", node: "node2", ips: ["198.18.0.12"] }).cert]]) writeFileSync(join(dir, f!), t!);
    const cfg = (cert: string) => [
      "cluster:", "  name: port-fms", "  node: node1", "  members:", '    - { name: node1, address: "198.18.0.11:1883" }',
      "bus:", "  password: x", `  tls: { ca_file: ${dir}/ca.crt, cert_file: ${dir}/${cert}, key_file: ${dir}/node.key }`, "",
    ].join("\n");
    const good = parseConfig(cfg("node.crt"), "t.yaml");
    assert.ok(good.ok && good.config.bus.tls?.material?.cert === node1.cert, "the material is read");
    const bad = parseConfig(cfg("other.crt"), "t.yaml");
    assert.not.ok(bad.ok);
    if (!bad.ok) {
      assert.match(bad.errors.join("\n"), `bus.tls.cert_file (${dir}/other.crt): issued to "node2", expected "node1"`);
      assert.match(bad.errors.join("\n"), `bus.tls.key_file (${dir}/node.key): not the key of the certificate`);
    }
    const missing = parseConfig(cfg("nope.crt"), "t.yaml");
    assert.ok(!missing.ok && /^bus\.tls\.cert_file: expected a readable file, got ".*nope\.crt"/.test(missing.errors[0]!));
    assert.ok(parseConfig(cfg("nope.crt"), "t.yaml", { secrets: false }).ok, "not read without secrets (bollard status)");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Tls("a client's check of a broker: the CA's chain is Node's, then the address, then the member it names", () => {
  const t = clientTls({ ca: ca.cert, ...node1 }, "node2");
  assert.is(t.rejectUnauthorized, true);
  const peer = (cn: string, san: string) => ({ subject: { CN: cn }, subjectaltname: san }) as unknown as PeerCertificate;
  assert.is(t.checkServerIdentity("198.18.0.12", peer("node2", "IP Address:198.18.0.12, DNS:node2")), undefined);
  assert.match(String(t.checkServerIdentity("198.18.0.12", peer("node3", "IP Address:198.18.0.12, DNS:node3"))), /presented the certificate of "node3", expected "node2"'s/);
  assert.match(String(t.checkServerIdentity("198.18.0.12", peer("node2", "IP Address:198.18.0.13, DNS:node2"))), /IP: 198\.18\.0\.12 is not in the cert's list/);
  const any = clientTls({ ca: ca.cert, ...node1 }, null); // a joiner's peers: any member's broker
  assert.is(any.checkServerIdentity("198.18.0.13", peer("node3", "IP Address:198.18.0.13")), undefined);
});

Tls.run();

// ---------------------------------------------------------------------------------------
const Rot = suite("rotation: a founder's derived password becomes its own");
const TOKEN = Buffer.from("a-test-token-of-enough-length");
const members = (pass?: string): ClusterConfig["members"] => [
  { name: "node1", bus: "198.18.0.11:1883", ...(pass ? { pass } : {}) }, { name: "node2", bus: "198.18.0.12:1883" }, { name: "node3", bus: "198.18.0.13:1883" },
];
const view = (epoch: number, pass?: string, formed = true) => ({
  committed: { epoch, term: 2, members: members(pass), assignments: {}, flags: {} }, leader: formed ? "node2" : null, current: formed, acting: formed,
});

function rig() {
  const dir = mkdtempSync(join(tmpdir(), "bollard-rot-"));
  const sent: Command[] = [];
  const answers: ((r: { status: "ok" | "error"; epoch?: number; error?: string }) => void)[] = [];
  const pw: string[][] = [];
  let now = 1000;
  let n = 0;
  const make = (current: string) => new PasswordRotation({
    cluster: "port-fms", node: "node1", stateDir: dir, token: TOKEN, current, log: quiet,
    command: (c, done) => { sent.push(c); answers.push(done); }, setPasswords: (l) => void pw.push(l), now: () => now, newPassword: () => `random-${++n}`,
  });
  return { dir, sent, answers, pw, make, tick: (ms: number) => (now += ms), done: () => rmSync(dir, { recursive: true, force: true }) };
}

Rot("formed cluster: pending kept first, rekey sent once, adopted at its commit, old one a fallback for a while", () => {
  const r = rig();
  try {
    const derived = derivedPassword(TOKEN, "port-fms", "node1");
    const rot = r.make(derived);
    rot.step(view(3, undefined, false));
    assert.is(r.sent.length, 0, "nothing before the cluster has formed");
    rot.step(view(3));
    assert.is(readFileSync(join(r.dir, PENDING_PASSWORD_FILE), "utf8"), "random-1\n", "the new password is on disk before it is sent");
    assert.is(statSync(join(r.dir, PENDING_PASSWORD_FILE)).mode & 0o777, 0o600);
    assert.equal(r.pw.at(-1), [derived, "random-1"], "both tried until the commit is seen");
    assert.is(r.sent.length, 1);
    const cmd = r.sent[0]!;
    assert.ok(cmd.op === "rekey" && cmd.node === "node1" && hashMatches("random-1", cmd.pass), "rekey with the hash of the new one");
    rot.step(view(3));
    assert.is(r.sent.length, 1, "not again while in flight");
    r.answers[0]!({ status: "ok", epoch: 4 });
    rot.step(view(3));
    assert.is(r.sent.length, 1, "not again right after it was committed (the follower's commit comes a heartbeat later)");
    rot.step(view(4, cmd.op === "rekey" ? cmd.pass : undefined));
    assert.is(readFileSync(join(r.dir, "bus.password"), "utf8"), "random-1\n");
    assert.not.ok(existsSync(join(r.dir, PENDING_PASSWORD_FILE)));
    assert.equal(r.pw.at(-1), ["random-1", derived]);
    assert.ok(rot.rotated);
    r.tick(61_000);
    rot.step(view(4, cmd.op === "rekey" ? cmd.pass : undefined));
    assert.equal(r.pw.at(-1), ["random-1"], "the derived one dropped after a minute");
  } finally {
    r.done();
  }
});

Rot("a refused rekey is asked again later with the same password; a restart mid-rotation resumes it", () => {
  const r = rig();
  try {
    const derived = derivedPassword(TOKEN, "port-fms", "node1");
    const rot = r.make(derived);
    rot.step(view(3));
    r.answers[0]!({ status: "error", error: "no leader known" });
    rot.step(view(3));
    assert.is(r.sent.length, 1, "waits before asking again");
    r.tick(5001);
    rot.step(view(3));
    assert.is(r.sent.length, 2);
    const c2 = r.sent[1]!;
    assert.ok(c2.op === "rekey" && hashMatches("random-1", c2.pass), "the same password again");
    // the agent restarts before it sees the commit; the commit happened
    const again = r.make(derived);
    assert.equal(r.pw.at(-1), [derived, "random-1"], "the pending one is a fallback at once");
    again.step(view(5, c2.op === "rekey" ? c2.pass : undefined));
    assert.is(readFileSync(join(r.dir, "bus.password"), "utf8"), "random-1\n");
  } finally {
    r.done();
  }
});

Rot("nothing to do for a configured password, or a node that joined; a foreign hash is said once", () => {
  const r = rig();
  try {
    r.make("configured-password").step(view(3));
    assert.is(r.sent.length, 0);
    const joined = r.make("joined-password");
    joined.step(view(3, mosquittoHash("joined-password")));
    assert.is(r.sent.length, 0);
    const lines: string[] = [];
    const loud = new PasswordRotation({
      cluster: "port-fms", node: "node1", stateDir: r.dir, token: TOKEN, current: "joined-password", log: { ...quiet, error: (m) => void lines.push(m) },
      command: () => undefined, setPasswords: () => undefined, now: () => 0,
    });
    loud.step(view(3, mosquittoHash("somebody-else")));
    loud.step(view(3, mosquittoHash("somebody-else")));
    assert.is(lines.length, 1);
    assert.match(lines[0]!, /holds a bus password for node1 that is not this node's/);
  } finally {
    r.done();
  }
});

Rot.run();

// ---------------------------------------------------------------------------------------
const Rekey = suite("rekey: a member's bus password is its own");

Rekey("the register replaces only the hash", () => {
  const c = bootstrapConfig(members());
  const next = applyCommand(c, { op: "rekey", node: "node2", pass: mosquittoHash("p") }, 3);
  assert.ok(typeof next !== "string");
  if (typeof next !== "string") {
    assert.equal(next.members.map((m) => m.bus), c.members.map((m) => m.bus));
    assert.ok(hashMatches("p", next.members[1]!.pass!));
    assert.is(next.members[0]!.pass, undefined);
  }
  assert.is(applyCommand(c, { op: "rekey", node: "node9", pass: mosquittoHash("p") }, 3), '"node9" is not a member');
});

Rekey("the leader refuses a rekey of another member's password", () => {
  const store = new MemStore();
  let now = 0;
  const sent: [string, Message][] = [];
  const env: CoreEnv = { now: () => now, wall: () => 1.7e12 + now, random: () => 0.5, nonce: () => "0".repeat(32), send: (to, m) => void sent.push([to, m]), store, log: quiet, event() {} };
  const core = new ClusterNode(env, "node1", DEFAULT_TIMING, bootstrapConfig([{ name: "node1", bus: "198.18.0.11:1883" }]));
  core.start();
  for (let i = 0; i < 200 && !core.hasLease(); i++) { now += 50; core.tick(); }
  assert.ok(core.hasLease(), "a one-member cluster elects itself");
  core.receive("node2", { v: 1, t: "cmd", id: "x-1", cmd: { op: "rekey", node: "node1", pass: mosquittoHash("stolen") } });
  const answer = sent.map(([, m]) => m).find((m) => m.t === "cmd-result");
  assert.ok(answer && answer.t === "cmd-result" && answer.status === "error");
  if (answer?.t === "cmd-result") assert.is(answer.error, "only node1 may change its own bus password (asked by node2)");
  assert.is(core.view().config.members[0]!.pass, undefined, "nothing changed");
});

Rekey.run();
