// `bollard seed`: generating a cluster's seeds, validating them, and what first boot writes
// from one (`bollard seed apply`). Pure functions and temp directories; no VM.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseConfig } from "../../agent/config/load.ts";
import type { CommandContext } from "../../agent/cli/types.ts";
import { derivedSecret, networkOf, renderNode, serverId, sha512Crypt, subnetHost, writeFiles } from "../../agent/provision/seed-apply.ts";
import { genOptions, makeSeeds } from "../../agent/provision/seed-gen.ts";
import { seedCommand } from "../../agent/provision/seed-cmd.ts";
import { parseSeed, renderSeed, type Seed } from "../../agent/provision/seed.ts";
import { issueNodeCert, makeCa, type KeyCert } from "../../agent/provision/pki.ts";
import { certFacts } from "../../agent/bus/tls.ts";

/** Deterministic "random" bytes: 0, 1, 2, ... */
function counter(): (n: number) => Buffer {
  let i = 0;
  return (n) => Buffer.from(Array.from({ length: n }, () => i++ & 255));
}

function cli(): CommandContext & { outText: () => string; errText: () => string } {
  let out = "";
  let err = "";
  return {
    configPath: "/etc/bollard/bollard.yaml",
    configGiven: false,
    io: { out: (t) => void (out += t + "\n"), err: (t) => void (err += t + "\n") },
    build: { version: "0.1.0", rev: "test" },
    outText: () => out,
    errText: () => err,
  };
}

// made once (a CA and three certificates are four openssl runs); each caller gets its own copy
let threeOnce: Seed[] | null = null;
const three = () => structuredClone((threeOnce ??= makeSeeds(genOptions(["--cluster", "port-fms", "--out", "/nowhere"], counter()).o)));

// ---------------------------------------------------------------------------------------
const Gen = suite("seed: generate");
const tmps: string[] = [];
const tmp = () => { const d = mkdtempSync(join(tmpdir(), "bollard-seed-")); tmps.push(d); return d; };
Gen.after(() => { for (const d of tmps) rmSync(d, { recursive: true, force: true }); });

Gen("three seeds for a new cluster: one token, founders, the lab's address plan", () => {
  const s = three();
  assert.equal(s.map((x) => x.node), ["node1", "node2", "node3"]);
  assert.ok(s.every((x) => x.join_token === s[0]!.join_token && x.join_token.length === 43));
  assert.equal(s[0]!.members, [
    { name: "node1", address: "198.18.0.11:1883" },
    { name: "node2", address: "198.18.0.12:1883" },
    { name: "node3", address: "198.18.0.13:1883" },
  ]);
  assert.equal(s.map((x) => x.network.data.address), ["198.18.0.11/24", "198.18.0.12/24", "198.18.0.13/24"]);
  assert.equal(s.map((x) => x.network.mgmt!.address), ["198.18.1.11/24", "198.18.1.12/24", "198.18.1.13/24"]);
  assert.equal(s[1]!.network.data.interfaces, ["eno1", "eno2"]);
  assert.equal(Object.keys(s[2]!.bmc), ["node1", "node2", "node3"]);
  assert.is(s[2]!.bmc.node3!.host, "198.18.1.23");
  assert.match(s[0]!.login.root_password_hash!, /^\$6\$[./A-Za-z0-9]{16}\$[./A-Za-z0-9]{86}$/);
});

Gen("a fresh token each time (crypto.randomBytes by default)", () => {
  const a = makeSeeds(genOptions(["--cluster", "c", "--out", "/x"]).o);
  const b = makeSeeds(genOptions(["--cluster", "c", "--out", "/x"]).o);
  assert.is.not(a[0]!.join_token, b[0]!.join_token);
});

Gen("addresses, NICs, BMCs, switches and the network's servers from the command line", () => {
  const dir = tmp();
  writeFileSync(join(dir, "bmc"), "s3cret\n");
  writeFileSync(join(dir, "snmp"), "private\n");
  const s = makeSeeds(genOptions([
    "--cluster", "port-fms", "--out", dir, "--nodes", "a1,a2,a3",
    "--addresses", "a1=10.1.0.1/16,a2=10.1.0.2,a3=10.1.0.3", "--mgmt", "a1=10.9.0.1/24,a2=10.9.0.2/24,a3=10.9.0.3/24",
    "--mgmt-gateway", "10.9.0.254", "--dns", "10.9.0.53", "--ntp", "ntp1.example,10.9.0.123", "--vip", "10.1.0.100",
    "--data-nics", "ens1f0,ens1f1", "--mgmt-nic", "eno1",
    "--bmc", "a1=root@10.9.1.1,a2=10.9.1.2:6230,a3=10.9.1.3", "--bmc-password-file", join(dir, "bmc"), "--bmc-cipher-suite", "3",
    "--switches", "swa=10.9.2.1,swb=10.9.2.2:1161", "--switch-ports", "a1=swp1,a2=swp2,a3=swp3", "--snmp-write-community-file", join(dir, "snmp"),
  ], counter()).o);
  const a2 = s[1]!;
  assert.is(a2.network.data.address, "10.1.0.2/24");
  assert.is(a2.members[0]!.address, "10.1.0.1:1883");
  assert.equal(a2.network.mgmt, { interface: "eno1", address: "10.9.0.2/24", gateway: "10.9.0.254" });
  assert.equal(a2.network.ntp, ["ntp1.example", "10.9.0.123"]);
  assert.is(a2.network.vip, "10.1.0.100/24");
  // the same certificate serves the web console (docs/web.md): the browser may come by the
  // management address or the VIP
  assert.equal(certFacts(a2.tls.cert).ips, ["10.1.0.2", "10.9.0.2", "10.1.0.100"]);
  assert.equal(a2.bmc.a1, { host: "10.9.1.1", port: 623, user: "root", password: "s3cret", cipher_suite: 3 });
  assert.is(a2.bmc.a2!.port, 6230);
  assert.equal(a2.switches[1], { name: "swb", host: "10.9.2.2", port: 1161, read_community: "public", write_community: "private", ports: { a1: "swp1", a2: "swp2", a3: "swp3" } });
  rmSync(dir, { recursive: true });
});

Gen("a node joining a running cluster: its token, the founders' brokers", () => {
  const dir = tmp();
  writeFileSync(join(dir, "token"), "an-existing-cluster-token-123\n");
  assert.throws(() => genOptions(["--cluster", "port-fms", "--out", dir, "--nodes", "node4", "--founders", "node1,node2,node3", "--token-file", join(dir, "token")]), /--ca-dir DIR is required with --token-file/);
  const ca = makeCa("port-fms");
  mkdirSync(join(dir, "ca"));
  writeFileSync(join(dir, "ca", "ca.crt"), ca.cert);
  writeFileSync(join(dir, "ca", "ca.key"), ca.key);
  const [s] = makeSeeds(genOptions(["--cluster", "port-fms", "--out", dir, "--nodes", "node4", "--founders", "node1,node2,node3", "--token-file", join(dir, "token"), "--ca-dir", join(dir, "ca")]).o);
  assert.is(s!.join_token, "an-existing-cluster-token-123");
  assert.is(s!.tls.ca_cert, ca.cert, "node4's certificate is the running cluster's CA's");
  assert.equal(certFacts(s!.tls.cert).ips, ["198.18.0.14", "198.18.1.14"], "its data and management addresses");
  assert.equal(s!.members.map((m) => m.name), ["node1", "node2", "node3"]);
  assert.is(s!.network.data.address, "198.18.0.14/24");
  rmSync(dir, { recursive: true });
});

Gen("bad command lines are refused with the flag named", () => {
  const bad: [string[], RegExp][] = [
    [["--out", "/x"], /--cluster NAME is required/],
    [["--cluster", "Port", "--out", "/x"], /--cluster: "Port" is not a name/],
    [["--cluster", "c"], /--out DIR is required/],
    [["--cluster", "c", "--out", "/x", "--addresses", "node1"], /--addresses: expected NAME=VALUE/],
    [["--cluster", "c", "--out", "/x", "--addresses", "node1=300.1.1.1/24"], /--addresses: node1=300\.1\.1\.1\/24 is not an address/],
    [["--cluster", "c", "--out", "/x", "--nodes", "n_1"], /"n_1" is not a node name/],
    [["--cluster", "c", "--out", "/x", "--bmc-cipher-suite", "18"], /--bmc-cipher-suite: expected 0-17/],
    [["--cluster", "c", "--out", "/x", "--token-file", "/does/not/exist"], /--token-file: cannot read/],
  ];
  for (const [args, re] of bad) assert.throws(() => makeSeeds(genOptions(args, counter()).o), re);
  // two nodes on one address: caught by the seed's own checks
  assert.throws(() => makeSeeds(genOptions(["--cluster", "c", "--out", "/x", "--addresses", "node1=10.0.0.1,node2=10.0.0.1"], counter()).o), /one broker address per member/);
});

Gen("the command writes one 0600 file per node and the login password, and does not overwrite", async () => {
  const dir = join(tmp(), "seeds");
  const c = cli();
  assert.is(await seedCommand.run(["--cluster", "port-fms", "--out", dir], c), 0, c.errText());
  for (const n of ["node1", "node2", "node3"]) {
    const f = join(dir, `${n}.seed.yaml`);
    assert.is(statSync(f).mode & 0o777, 0o600);
    const r = parseSeed(readFileSync(f, "utf8"), f);
    assert.ok(r.ok, JSON.stringify(r));
  }
  const pw = readFileSync(join(dir, "login-password.txt"), "utf8").trim();
  const seed = parseSeed(readFileSync(join(dir, "node1.seed.yaml"), "utf8"), "x");
  const hash = seed.ok ? seed.seed.login.root_password_hash! : "";
  assert.is(sha512Crypt(pw, hash.split("$")[2]!), hash, "the hash is of the written password");
  const again = cli();
  assert.is(await seedCommand.run(["--cluster", "port-fms", "--out", dir], again), 1);
  assert.match(again.errText(), /already exist.*--force/);
  assert.is(await seedCommand.run(["--cluster", "port-fms", "--out", dir, "--force"], cli()), 0);
  const usage = cli();
  assert.is(await seedCommand.run(["--cluster", "port-fms", "--out", dir, "--bogus"], usage), 2);
  assert.match(usage.errText(), /bogus/);
});

Gen.run();

// ---------------------------------------------------------------------------------------
const Parse = suite("seed: validate");

const text = () => renderSeed(three()[0]!, "test");
/** node1's key and certificate from another cluster's CA */
let otherOnce: KeyCert | null = null;
const other = () => (otherOnce ??= issueNodeCert(makeCa("port-fms"), { cluster: "port-fms", node: "node1", ips: ["198.18.0.11"] }));

Parse("a written seed reads back as the same seed", () => {
  const s = three()[0]!;
  const r = parseSeed(renderSeed(s, "test"), "s");
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.seed, s);
});

Parse("every error names the key, what was expected and what was found", () => {
  const cases: [(t: string) => string, RegExp][] = [
    [(t) => t.replace('address: "198.18.0.11/24"', 'address: "198.18.0.11"'), /network\.data\.address: expected an address with its prefix length.*got "198\.18\.0\.11"/],
    [(t) => t.replace("node: node1", "node: Node1"), /^node: expected a name/],
    [(t) => t.replace("version: 1", "version: 2"), /^version: expected 1 \(the seed format\), got 2/],
    [(t) => t.replace(/join_token: ".*"/, 'join_token: "short"'), /join_token: expected the join token/],
    [(t) => t.replace("cluster: port-fms", "cluster: port-fms\nclustr: x"), /\(top level\): unknown key "clustr"/],
    [(t) => t.replace('interfaces: ["eno1", "eno2"]', "interfaces: []"), /network\.data\.interfaces: expected a list of 1 to 4 NIC names/],
    [(t) => t.replace('{ name: "node2", address: "198.18.0.12:1883" }', '{ name: "node2", address: "198.18.0.11:1883" }'), /members: expected one broker address per member/],
    [(t) => t.replace('{ name: "node1", address: "198.18.0.11:1883" }', '{ name: "node1", address: "198.18.0.99:1883" }'), /node1's broker address 198\.18\.0\.99:1883 is not on its data address 198\.18\.0\.11/],
    [(t) => t.replace('interface: "eno3"', 'interface: "eno2"'), /network\.mgmt\.interface: eno2 is also a data interface/],
    [(t) => t.replace("cluster: port-fms", "cluster: port-fms\ncluster: again"), /YAML syntax: Map keys must be unique/],
    [(t) => t.replace(/\n  key: \|\n(    .*\n)+/, "\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    AAAA\n    -----END PRIVATE KEY-----\n"), /^tls\.key: expected a PEM private key, got one that does not parse/],
    [(t) => t.replace(/\n  key: \|\n(    .*\n)+/, `\n  key: |\n${other().key.trim().split("\n").map((l) => `    ${l}`).join("\n")}\n`), /^tls\.key: not the key of the certificate in tls\.cert$/],
    [(t) => t.replace(/\n  cert: \|\n(    .*\n)+/, `\n  cert: |\n${other().cert.trim().split("\n").map((l) => `    ${l}`).join("\n")}\n`), /^tls\.cert: not issued by the CA in tls\.ca_cert \(another cluster's certificate\?\)$/],
    [(t) => t.replace("node: node1", "node: node2"), /^tls\.cert: issued to "node1", expected "node2"$/],
  ];
  for (const [edit, re] of cases) {
    const r = parseSeed(edit(text()), "seed.yaml");
    assert.not.ok(r.ok, String(re));
    if (!r.ok) assert.ok(r.errors.some((e) => re.test(e)), `${re} not in:\n${r.errors.join("\n")}`);
  }
});

Parse("`seed check` prints what the seed says, or its errors with exit 2", async () => {
  const dir = tmp();
  writeFileSync(join(dir, "good.yaml"), text());
  writeFileSync(join(dir, "bad.yaml"), text().replace("version: 1", "version: 7"));
  const ok = cli();
  assert.is(await seedCommand.run(["check", join(dir, "good.yaml")], ok), 0);
  assert.match(ok.outText(), /ok: node node1 of cluster port-fms \(founder; founders node1, node2, node3\), data 198\.18\.0\.11\/24 on bond0 \(eno1, eno2\)/);
  const bad = cli();
  assert.is(await seedCommand.run(["check", join(dir, "bad.yaml")], bad), 2);
  assert.match(bad.errText(), /not a valid seed: 1 error:\n {2}version: expected 1/);
  const none = cli();
  assert.is(await seedCommand.run(["check", join(dir, "missing.yaml")], none), 2);
  assert.match(none.errText(), /cannot read the seed/);
  rmSync(dir, { recursive: true });
});

Parse.run();

// ---------------------------------------------------------------------------------------
const Crypt = suite("seed: sha512 crypt");

Crypt("the test vectors of Drepper's specification", () => {
  assert.is(sha512Crypt("Hello world!", "saltstring"), "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1");
  assert.is(
    sha512Crypt("Hello world!", "saltstringsaltstring", 10000),
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
  );
  assert.is(
    sha512Crypt("a very much longer text to encrypt.  This one even stretches over morethan one line.", "anotherlongsaltstring", 1400),
    "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
  );
});

Crypt.run();

// ---------------------------------------------------------------------------------------
const Apply = suite("seed: apply (first boot)");

const files = (s: Seed) => new Map(renderNode(s, { mysqlBollard: "local-secret" }).map((f) => [f.path, f]));

Apply("the agent's config is one the agent accepts: join with the token, the broker's files", () => {
  for (const s of three()) {
    const y = files(s).get("/etc/bollard/bollard.yaml")!;
    const r = parseConfig(y.text, y.path, { secrets: false });
    assert.ok(r.ok, r.ok ? "" : r.errors.join("\n"));
    if (!r.ok) continue;
    const c = r.config;
    assert.is(c.cluster.node, s.node);
    assert.equal(c.cluster.members.map((m) => m.address), ["198.18.0.11:1883", "198.18.0.12:1883", "198.18.0.13:1883"]);
    assert.is(c.cluster.join!.tokenFile, "/var/lib/bollard/secrets/join.token");
    assert.is(c.cluster.join!.address, s.members.find((m) => m.name === s.node)!.address);
    assert.not.ok(c.cluster.join!.peers.includes(c.cluster.join!.address!));
    assert.equal(c.bus.broker, { passwordFile: "/var/lib/bollard/mosquitto/passwd", aclFile: "/var/lib/bollard/mosquitto/acl", pidFile: "/run/mosquitto/mosquitto.pid" });
    assert.equal(c.bus.tls, { caFile: "/var/lib/bollard/secrets/tls/ca.crt", certFile: "/var/lib/bollard/secrets/tls/node.crt", keyFile: "/var/lib/bollard/secrets/tls/node.key", material: null });
    assert.is(c.web.enabled, true, "a seeded node serves the web console (with the seeded certificate)");
    assert.equal(c.web.listen, [{ host: "0.0.0.0", port: 443 }]);
    assert.is(c.web.certFile, null, "no certificate of its own: the bus's, from the cluster CA");
    assert.is(y.mode, 0o640);
  }
});

Apply("TLS: the node's key and certificates from its seed, and a listener that requires a cluster certificate", () => {
  const s = three()[2]!;
  const f = files(s);
  assert.is(f.get("/var/lib/bollard/secrets/tls/node.key")!.mode, 0o600);
  assert.is(f.get("/var/lib/bollard/secrets/tls/node.key")!.text, s.tls.key.trim() + "\n");
  assert.is(f.get("/var/lib/bollard/secrets/tls/node.crt")!.text, s.tls.cert.trim() + "\n");
  assert.is(f.get("/var/lib/bollard/secrets/tls/ca.crt")!.text, s.tls.ca_cert.trim() + "\n");
  assert.equal(certFacts(s.tls.cert).ips, ["198.18.0.13", "198.18.1.13"]);
  assert.is(certFacts(s.tls.cert).cn, "node3");
  assert.equal(f.get("/etc/mosquitto/conf.d/bollard-listener.conf")!.text.split("\n").slice(1, -1), [
    "listener 1883 198.18.0.13",
    "cafile /var/lib/bollard/secrets/tls/ca.crt", "certfile /var/lib/bollard/secrets/tls/node.crt", "keyfile /var/lib/bollard/secrets/tls/node.key",
    "require_certificate true", "use_identity_as_username false", "tls_version tlsv1.2",
  ]);
  // the CA's key is in no seed
  for (const x of three()) assert.not.match(renderSeed(x, "t"), /BEGIN PRIVATE KEY[\s\S]*BEGIN PRIVATE KEY/);
});

Apply("a joining node's config: not a member, joins through the founders", () => {
  const [s] = makeSeeds(genOptions(["--cluster", "port-fms", "--out", "/x", "--nodes", "node4", "--founders", "node1,node2,node3"], counter()).o);
  const y = files(s!).get("/etc/bollard/bollard.yaml")!;
  const r = parseConfig(y.text, y.path, { secrets: false });
  assert.ok(r.ok, r.ok ? "" : r.errors.join("\n"));
  if (r.ok) {
    assert.is(r.config.cluster.join!.address, "198.18.0.14:1883");
    assert.equal(r.config.cluster.join!.peers, ["198.18.0.11:1883", "198.18.0.12:1883", "198.18.0.13:1883"]);
  }
});

Apply("bond0 active-backup over the data NICs, the management NIC, hostname and hosts", () => {
  const f = files(three()[1]!);
  assert.match(f.get("/etc/systemd/network/10-bollard-bond0.netdev")!.text, /Kind=bond\n\n\[Bond\]\nMode=active-backup\nMIIMonitorSec=100ms/);
  assert.match(f.get("/etc/systemd/network/20-bollard-bond0-port1.network")!.text, /Name=eno1\n\n\[Network\]\nBond=bond0\nPrimarySlave=true\n/);
  assert.match(f.get("/etc/systemd/network/20-bollard-bond0-port2.network")!.text, /Name=eno2\n\n\[Network\]\nBond=bond0\nLinkLocalAddressing=no/);
  assert.match(f.get("/etc/systemd/network/30-bollard-bond0.network")!.text, /Name=bond0\n\n\[Network\]\nAddress=198\.18\.0\.12\/24/);
  assert.match(f.get("/etc/systemd/network/40-bollard-mgmt.network")!.text, /Name=eno3\n\n\[Network\]\nAddress=198\.18\.1\.12\/24/);
  assert.is(f.get("/etc/hostname")!.text, "node2\n");
  assert.match(f.get("/etc/hosts")!.text, /198\.18\.0\.12\tnode2\n198\.18\.0\.11\tnode1\n198\.18\.0\.13\tnode3/);
  assert.is(f.get("/etc/mosquitto/conf.d/bollard-listener.conf")!.text.split("\n")[1], "listener 1883 198.18.0.12");
  assert.match(f.get("/etc/chrony/sources.d/bollard.sources")!.text, /peer 198\.18\.0\.11 iburst\npeer 198\.18\.0\.13 iburst/);
  assert.match(f.get("/etc/chrony/conf.d/bollard.conf")!.text, /allow 198\.18\.0\.0\/24/);
});

Apply("cluster-wide secrets agree on every node; node secrets and server ids do not", () => {
  const s = three();
  const secret = (x: Seed, n: string) => files(x).get(`/var/lib/bollard/secrets/${n}`)!.text;
  assert.is(secret(s[0]!, "mysql-repl.password"), secret(s[2]!, "mysql-repl.password"));
  assert.is(secret(s[0]!, "redis.password"), secret(s[1]!, "redis.password"));
  assert.is.not(secret(s[0]!, "redis.password"), secret(s[0]!, "mysql-repl.password"));
  assert.is(secret(s[0]!, "redis.password").trim(), derivedSecret(s[0]!.join_token, "port-fms", "redis"));
  assert.is(derivedSecret("token-aaaaaaaaaaaa", "a", "redis") === derivedSecret("token-aaaaaaaaaaab", "a", "redis"), false);
  assert.is(secret(s[0]!, "join.token").trim(), s[0]!.join_token);
  assert.ok(files(s[0]!).get("/var/lib/bollard/secrets/mysql-bollard.password")!.keep, "a node's random secret is made once");
  const ids = s.map((x) => serverId(x.network.data.address));
  assert.is(new Set(ids).size, 3);
  assert.is(serverId("10.0.0.1/8"), 167772161);
  assert.is(subnetHost("198.18.0.12/24"), "198.18.0.0/255.255.255.0");
  assert.is(subnetHost("10.1.2.3/16"), "10.1.0.0/255.255.0.0");
  assert.is(networkOf("10.1.2.3/16"), "10.1.0.0/16");
  const sql = files(s[0]!).get("/run/bollard/mariadb-init.sql")!.text;
  assert.match(sql, /^SET sql_log_bin = 0;/, "accounts stay out of the binary log (no GTIDs that differ between nodes)");
  assert.match(sql, /'repl'@'198\.18\.0\.0\/255\.255\.255\.0' IDENTIFIED BY '[0-9a-f]{40}'/);
  assert.match(files(s[0]!).get("/etc/redis/bollard-node.conf")!.text, /requirepass [0-9a-f]{40}\nmasterauth [0-9a-f]{40}/);
});

Apply("`seed apply --root` writes the files with their modes; run again it keeps what it made", async () => {
  const root = mkdtempSync(join(tmpdir(), "bollard-root-"));
  const seed = join(root, "node3.seed.yaml");
  writeFileSync(seed, renderSeed(three()[2]!, "test"));
  const c = cli();
  assert.is(await seedCommand.run(["apply", seed, "--root", root], c), 0, c.errText());
  assert.match(c.outText(), /node node3 of cluster port-fms/);
  const mode = (p: string) => statSync(join(root, p)).mode & 0o777;
  assert.is(mode("var/lib/bollard/secrets"), 0o700);
  assert.is(mode("var/lib/bollard/secrets/join.token"), 0o600);
  assert.is(mode("var/lib/bollard/seed.yaml"), 0o600);
  assert.is(mode("etc/bollard/bollard.yaml"), 0o640);
  assert.is(mode("etc/hostname"), 0o644);
  const local = readFileSync(join(root, "var/lib/bollard/secrets/mysql-bollard.password"), "utf8");
  writeFileSync(join(root, "var/lib/bollard/mosquitto/passwd"), "node1:$7$written-by-the-agent\n");
  assert.is(await seedCommand.run(["apply", seed, "--root", root], cli()), 0);
  assert.is(readFileSync(join(root, "var/lib/bollard/secrets/mysql-bollard.password"), "utf8"), local);
  assert.is(readFileSync(join(root, "var/lib/bollard/mosquitto/passwd"), "utf8"), "node1:$7$written-by-the-agent\n");
  const bad = join(root, "bad.yaml");
  writeFileSync(bad, "version: 1\n");
  const b = cli();
  assert.is(await seedCommand.run(["apply", bad, "--root", join(root, "other")], b), 2);
  assert.match(b.errText(), /not a valid seed/);
  assert.not.ok(existsSync(join(root, "other")), "nothing written from an invalid seed");
  rmSync(root, { recursive: true });
});

Apply("--timing-scale: the seed carries the timings, the agent's config has them", () => {
  const [s] = makeSeeds(genOptions(["--cluster", "slow", "--out", "/x", "--nodes", "node1", "--timing-scale", "10"], counter()).o);
  assert.equal(s!.timing, { tick_ms: 500, heartbeat_ms: 2000, peer_dead_ms: 12000, election_jitter_ms: 3000, lease_ms: 20000, quorum_loss_ms: 30000, clock_jump_ms: 10000, tilt_hold_ms: 20000 });
  const again = parseSeed(renderSeed(s!, "t"), "s");
  assert.ok(again.ok && again.seed.timing?.lease_ms === 20000);
  const y = files(s!).get("/etc/bollard/bollard.yaml")!;
  const r = parseConfig(y.text, y.path, { secrets: false });
  assert.ok(r.ok, r.ok ? "" : r.errors.join("\n"));
  if (r.ok) assert.equal([r.config.timing.heartbeatMs, r.config.timing.peerDeadMs, r.config.timing.maxDrift], [2000, 12000, 0.01]);
  assert.match(files(s!).get("/etc/systemd/system/bollard-agent.service.d/timing.conf")!.text, /\[Service\]\nWatchdogSec=50s\nTimeoutStartSec=1200s/);
  assert.not.ok(files(three()[0]!).has("/etc/systemd/system/bollard-agent.service.d/timing.conf"), "default timings: the unit's watchdog");
  assert.throws(() => genOptions(["--cluster", "c", "--out", "/x", "--timing-scale", "0.5"]), /--timing-scale: expected a number from 1 to 50/);
  // a seed's timings must keep the core's relations, and only its keys
  const bad = parseSeed(renderSeed(three()[0]!, "t").replace("login:", "timing: { heartbeat_ms: 1000 }\nlogin:"), "s");
  assert.not.ok(bad.ok);
  if (!bad.ok) assert.match(bad.errors.join("\n"), /^timing: .*peer_dead_ms/m);
  const unknown = parseSeed(renderSeed(three()[0]!, "t").replace("login:", "timing: { heartbeat: 1000 }\nlogin:"), "s");
  assert.not.ok(unknown.ok);
  if (!unknown.ok) assert.match(unknown.errors.join("\n"), /^timing: unknown key "heartbeat"; expected one of tick_ms, heartbeat_ms/m);
});

Apply("writeFiles makes parent directories and keeps `keep` files", () => {
  const root = mkdtempSync(join(tmpdir(), "bollard-root-"));
  writeFiles(root, [{ path: "/a/b/c", text: "one", mode: 0o600, keep: true }]);
  writeFiles(root, [{ path: "/a/b/c", text: "two", mode: 0o600, keep: true }]);
  assert.is(readFileSync(join(root, "a/b/c"), "utf8"), "one");
  rmSync(root, { recursive: true });
});

Apply.run();
