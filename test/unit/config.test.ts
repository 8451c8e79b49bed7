// The config file: defaults, and errors that name the path, what was expected and what was found.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TIMING } from "../../agent/cluster/timing.ts";
import { loadConfig, parseConfig, type LoadResult } from "../../agent/config/load.ts";
import { bootstrapConfig, type Config } from "../../agent/config/schema.ts";

const GOOD = `
cluster:
  name: port-fms
  node: node1
  members:
    - { name: node1, address: "198.18.1.1:1883" }
    - { name: node2, address: "198.18.1.2:1883" }
    - { name: node3, address: "198.18.1.3:1883" }
bus:
  password: s3cret
`;

function ok(r: LoadResult): Config {
  if (!r.ok) assert.unreachable(`expected a valid config, got:\n${r.errors.join("\n")}`);
  return (r as { config: Config }).config;
}

function errors(text: string): string[] {
  const r = parseConfig(text, "test.yaml");
  if (r.ok) assert.unreachable("expected config errors, got a valid config");
  return (r as { errors: string[] }).errors;
}

const Defaults = suite("config defaults");

Defaults("a minimal file gets every default", () => {
  const c = ok(parseConfig(GOOD, "test.yaml"));
  assert.equal(c.cluster.name, "port-fms");
  assert.equal(c.cluster.node, "node1");
  assert.equal(c.cluster.members[2], { name: "node3", address: "198.18.1.3:1883" });
  assert.is(c.cluster.join, null);
  assert.equal(c.bus, { username: "node1", password: "s3cret", passwordFile: null, broker: null, tls: null });
  assert.is(c.stateDir, "/var/lib/bollard");
  assert.is(c.log.level, "info");
  assert.equal(c.timing, DEFAULT_TIMING);
  assert.is(c.control.socket, "/var/lib/bollard/agent.sock");
});

Defaults("control.socket follows state_dir; explicit values win", () => {
  const c = ok(parseConfig(GOOD + "state_dir: /srv/b/\nlog: {level: debug}\ntiming: {lease_ms: 2400}\n", "t"));
  assert.is(c.control.socket, "/srv/b/agent.sock");
  assert.is(c.log.level, "debug");
  assert.is(c.timing.leaseMs, 2400);
  assert.is(c.timing.heartbeatMs, DEFAULT_TIMING.heartbeatMs);
});

Defaults("bootstrap register from the members", () => {
  const c = ok(parseConfig(GOOD, "t"));
  assert.equal(bootstrapConfig(c), {
    epoch: 0,
    term: 0,
    members: [
      { name: "node1", bus: "198.18.1.1:1883" },
      { name: "node2", bus: "198.18.1.2:1883" },
      { name: "node3", bus: "198.18.1.3:1883" },
    ],
    assignments: {},
    flags: {},
  });
});

Defaults("a node outside the members may start with cluster.join", () => {
  const join = "  join: { token_file: /etc/bollard/join.token, peers: ['198.18.1.1:1883'], address: '198.18.1.4:1883' }\nbus:";
  const c = ok(parseConfig(GOOD.replace("node: node1", "node: node4").replace("bus:", join), "t", { secrets: false }));
  assert.equal(c.cluster.join, { tokenFile: "/etc/bollard/join.token", peers: ["198.18.1.1:1883"], address: "198.18.1.4:1883", timeoutMs: 5000, token: null });
});

Defaults("a founder's join defaults: peers are the other members, address its own entry", () => {
  const join = "  join: { token_file: /etc/bollard/join.token }\nbus:";
  const c = ok(parseConfig(GOOD.replace("bus:", join), "t", { secrets: false }));
  assert.equal(c.cluster.join, { tokenFile: "/etc/bollard/join.token", peers: ["198.18.1.2:1883", "198.18.1.3:1883"], address: "198.18.1.1:1883", timeoutMs: 5000, token: null });
});

Defaults.run();

const Errors = suite("config errors name path, expected and found");

Errors("a bad member address", () => {
  const e = errors(GOOD.replace('"198.18.1.3:1883"', "node3"));
  assert.equal(e, ['cluster.members[2].address: expected host:port, got "node3"']);
});

Errors("port out of range and IPv6", () => {
  assert.equal(errors(GOOD.replace("198.18.1.2:1883", "198.18.1.2:70000")), [
    'cluster.members[1].address: expected host:port, got "198.18.1.2:70000"',
  ]);
  ok(parseConfig(GOOD.replace("198.18.1.2:1883", "[fd00::2]:1883"), "t"));
});

Errors("a missing node", () => {
  const e = errors(GOOD.replace("  node: node1\n", ""));
  assert.is(e.length, 1);
  assert.match(e[0]!, /^cluster\.node: expected a name of a-z, 0-9 and -.*, got nothing$/);
});

Errors("an unknown key, with the allowed keys and a suggestion", () => {
  const e = errors(GOOD + "timing:\n  heartbeat_msec: 200\n");
  assert.is(e.length, 1);
  assert.match(e[0]!, /^timing\.heartbeat_msec: unknown key \(got 200\); expected one of tick_ms, heartbeat_ms, /);
  assert.match(e[0]!, /did you mean "heartbeat_ms"\?$/);
  assert.match(errors(GOOD + "statedir: /x\n")[0]!, /^statedir: unknown key .*did you mean "state_dir"/);
});

Errors("a bad timing relation is reported under timing, with the values", () => {
  const e = errors(GOOD + "timing:\n  lease_ms: 400\n");
  assert.equal(e, ["timing: lease_ms must be at least 3 x heartbeat_ms, so the lease is renewed before it runs out (got heartbeat_ms=200, lease_ms=400)"]);
});

Errors("a wrong type", () => {
  assert.equal(errors(GOOD + "timing:\n  tick_ms: 50ms\n"), ['timing.tick_ms: expected a whole number of milliseconds > 0, got "50ms"']);
  assert.equal(errors(GOOD + "log:\n  level: verbose\n"), ['log.level: expected one of debug, info, warn, error, got "verbose"']);
});

Errors("a joiner outside the members must name its own broker", () => {
  const join = "  join: { token_file: /etc/bollard/join.token, peers: ['198.18.1.1:1883'] }\nbus:";
  assert.equal(errors(GOOD.replace("node: node1", "node: node4").replace("bus:", join)), [
    "cluster.join.address: expected this node's broker host:port (node4 is not in cluster.members), got none",
  ]);
});

Errors("both password and password_file, or neither", () => {
  assert.equal(errors(GOOD + "  password_file: /etc/bollard/bus.password\n"), [
    "bus: expected at most one of password or password_file, got both",
  ]);
  assert.equal(errors(GOOD.replace("  password: s3cret\n", "  username: n1\n")), [
    "bus: expected one of password or password_file, got neither (or set cluster.join: the join gives the node its bus password)",
  ]);
});

Errors("this node must be a member unless joining", () => {
  const e = errors(GOOD.replace("node: node1", "node: node9"));
  assert.equal(e, [
    'cluster.node: expected one of the members (node1, node2, node3), got "node9"; add it to cluster.members, or set cluster.join to join an existing cluster',
  ]);
});

Errors("duplicate member names", () => {
  const e = errors(GOOD.replace("name: node3", "name: node2"));
  assert.equal(e, ['cluster.members: expected unique names, got "node2" more than once']);
});

Errors("YAML syntax and repeated keys", () => {
  assert.match(errors("cluster: [\n")[0]!, /^test\.yaml: YAML syntax: /);
  assert.match(errors(GOOD + "state_dir: /a\nstate_dir: /b\n")[0]!, /^test\.yaml: YAML syntax: Map keys must be unique/);
  assert.equal(errors(""), ["(top level): expected a mapping (the bollard config), got nothing"]);
});

Errors.run();

const Files = suite("config files");
let dir = "";
Files.before(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-config-"));
});
Files.after(() => rmSync(dir, { recursive: true, force: true }));

Files("a missing file names the file", () => {
  const r = loadConfig(join(dir, "nope.yaml"));
  assert.not.ok(r.ok);
  assert.match((r as { errors: string[] }).errors[0]!, /nope\.yaml: cannot read the config file: ENOENT/);
});

Files("password_file is read, without its trailing newline", () => {
  writeFileSync(join(dir, "pw"), "from-file\n");
  writeFileSync(join(dir, "a.yaml"), GOOD.replace("password: s3cret", `password_file: ${join(dir, "pw")}`));
  const c = ok(loadConfig(join(dir, "a.yaml")));
  assert.is(c.bus.password, "from-file");
  assert.is(c.bus.passwordFile, join(dir, "pw"));
});

Files("an unreadable password_file is an error", () => {
  const e = errors(GOOD.replace("password: s3cret", `password_file: ${join(dir, "missing")}`));
  assert.is(e.length, 1);
  assert.match(e[0]!, /^bus\.password_file: expected a readable file, got ".*missing" \(ENOENT/);
});

Files("secrets: false skips the password file (the CLI needs only the paths)", () => {
  writeFileSync(join(dir, "b.yaml"), GOOD.replace("password: s3cret", `password_file: ${join(dir, "missing")}`));
  const c = ok(loadConfig(join(dir, "b.yaml"), { secrets: false }));
  assert.is(c.bus.password, "");
  assert.is(c.control.socket, "/var/lib/bollard/agent.sock");
});

Files("the example config in overlays/ is valid", () => {
  writeFileSync(join(dir, "pw"), "x\n");
  const example = readFileSync(new URL("../../overlays/etc/bollard/bollard.example.yaml", import.meta.url), "utf8");
  const c = ok(parseConfig(example.replace("/etc/bollard/bus.password", join(dir, "pw")), "example"));
  assert.equal(c.timing, DEFAULT_TIMING);
  assert.is(c.cluster.members.length, 3);
});

Files.run();
