// The vms: section (agent/config/vm-schema.ts, docs/vm.md): defaults, and bad definitions
// refused with a message that names the key: an unknown disk, memory above every node's
// capacity, a cycle in depends_on, an unknown group or dependency, a disk on two VMs.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseConfig } from "../../agent/config/load.ts";
import type { Config } from "../../agent/config/schema.ts";
import { defsDigest } from "../../agent/config/vm-schema.ts";

const BASE = `
cluster:
  name: port-fms
  node: node1
  members:
    - { name: node1, address: "198.18.0.11:1883" }
    - { name: node2, address: "198.18.0.12:1883" }
    - { name: node3, address: "198.18.0.13:1883" }
bus:
  password: s3cret
`;

const NODES = `
  nodes:
    node1: { address: 198.18.0.11, memory_mb: 1024 }
    node2: { address: 198.18.0.12, memory_mb: 1024 }
    node3: { address: 198.18.0.13, memory_mb: 512 }
`;

const GOOD = `${BASE}vms:${NODES}
  groups:
    cp: { anti_affinity: hard }
  disks:
    cp1-data: { size_mb: 64 }
    cp2-data: { size_mb: 64 }
    db-data: { size_mb: 32, image: /srv/images/db.raw }
  machines:
    cp1: { memory_mb: 128, disks: [cp1-data], group: cp, priority: 100 }
    cp2: { memory_mb: 128, disks: [cp2-data], group: cp, priority: 100, depends_on: [cp1] }
    db: { memory_mb: 256, disks: [db-data], depends_on: [mysql], nics: [{ bridge: br-data, mac: "52:54:00:00:00:01" }] }
`;

function config(text: string): Config {
  const r = parseConfig(text, "test.yaml");
  if (!r.ok) assert.unreachable(`expected a valid config, got:\n${r.errors.join("\n")}`);
  return (r as { config: Config }).config;
}

function errors(text: string): string[] {
  const r = parseConfig(text, "test.yaml");
  if (r.ok) assert.unreachable("expected config errors, got a valid config");
  return (r as { errors: string[] }).errors;
}

const has = (errs: string[], re: RegExp) => assert.ok(errs.some((e) => re.test(e)), `no error matches ${re}:\n${errs.join("\n")}`);

const Good = suite("vms: a valid section");

Good("without vms: the agent runs no VMs", () => {
  assert.is(config(BASE).vms, null);
});

Good("definitions, defaults, capacities and groups become the catalog", () => {
  const v = config(GOOD).vms!;
  assert.is(v.dir, "/var/lib/bollard/vms");
  assert.is(v.accel, "auto");
  assert.is(v.nbdPort, 10809);
  assert.is(v.migrationPort, 49152);
  assert.is(v.stopTimeoutMs, 30_000);
  assert.equal(v.addresses, { node1: "198.18.0.11", node2: "198.18.0.12", node3: "198.18.0.13" });
  assert.equal(v.catalog.capacity, { node1: 1024, node2: 1024, node3: 512 });
  assert.equal(v.catalog.groups, { cp: { antiAffinity: "hard" } });
  const db = v.catalog.defs.find((d) => d.name === "db")!;
  assert.equal(db, {
    name: "db", vcpus: 1, memoryMb: 256, disks: [{ name: "db-data", sizeMb: 32, image: "/srv/images/db.raw" }],
    nics: [{ bridge: "br-data", mac: "52:54:00:00:00:01" }], group: null, priority: 0, dependsOn: ["mysql"], autostart: true, kernel: null,
  });
  assert.match(v.digest, /^[0-9a-f]{16}$/);
});

Good("the digest changes with a definition, not with the order they are written in", () => {
  const a = config(GOOD).vms!;
  const reordered = GOOD.replace(/    cp1: .*\n    cp2: .*\n/, (m) => m.split("\n").filter(Boolean).reverse().join("\n") + "\n");
  assert.is.not(reordered, GOOD);
  assert.is(config(reordered).vms!.digest, a.digest);
  assert.is.not(defsDigest({ ...a.catalog, defs: a.catalog.defs.map((d) => (d.name === "db" ? { ...d, memoryMb: 300 } : d)) }), a.digest);
});

Good("a node's address comes from ha.nodes when vms.nodes has none", () => {
  const text = `${BASE}ha:
  nodes:
    node1: { address: 198.18.0.11 }
    node2: { address: 198.18.0.12 }
    node3: { address: 198.18.0.13 }
vms:
  nodes: { node1: { memory_mb: 512 }, node2: { memory_mb: 512 }, node3: { memory_mb: 512 } }
  machines:
    a: { memory_mb: 64, kernel: { path: /k } }
`;
  assert.equal(config(text).vms!.addresses, { node1: "198.18.0.11", node2: "198.18.0.12", node3: "198.18.0.13" });
});

Good.run();

const Bad = suite("vms: bad definitions are refused, naming the key");

Bad("an unknown disk", () => {
  has(errors(GOOD.replace("disks: [cp2-data]", "disks: [cp9-data]")), /^vms\.machines\.cp2\.disks\[0\]: unknown disk "cp9-data"; expected one of vms\.disks \(cp1-data, cp2-data, db-data\)$/);
});

Bad("memory above every node's capacity", () => {
  has(errors(GOOD.replace("db: { memory_mb: 256", "db: { memory_mb: 4096")), /^vms\.machines\.db\.memory_mb: 4096 MB is more than any node gives to VMs \(the largest, vms\.nodes\.\*\.memory_mb, is 1024 MB\)$/);
});

Bad("a cycle in depends_on, named once with its path", () => {
  const errs = errors(GOOD.replace("priority: 100 }\n    cp2", "priority: 100, depends_on: [db] }\n    cp2").replace("depends_on: [mysql]", "depends_on: [mysql, cp2]"));
  const cyc = errs.filter((e) => /a cycle/.test(e));
  assert.is(cyc.length, 1, errs.join("\n"));
  assert.is(cyc[0], "vms.machines.cp1.depends_on: a cycle: cp1 -> db -> cp2 -> cp1; no VM of it could ever start");
});

Bad("a VM that depends on itself, or on something unknown", () => {
  has(errors(GOOD.replace("depends_on: [cp1]", "depends_on: [cp2]")), /^vms\.machines\.cp2\.depends_on\[0\]: cp2 cannot depend on itself$/);
  has(errors(GOOD.replace("depends_on: [mysql]", "depends_on: [postgres]")), /^vms\.machines\.db\.depends_on\[0\]: unknown "postgres"; expected a VM of vms\.machines or mysql \/ redis$/);
});

Bad("an unknown group", () => {
  has(errors(GOOD.replace("group: cp, priority: 100, depends_on", "group: kube, priority: 100, depends_on")), /^vms\.machines\.cp2\.group: unknown group "kube"; expected one of vms\.groups \(cp\)$/);
});

Bad("a disk attached to two VMs", () => {
  has(errors(GOOD.replace("disks: [cp2-data]", "disks: [cp1-data]")), /^vms\.machines\.cp2\.disks\[0\]: disk "cp1-data" is already attached to cp1; a disk belongs to one VM$/);
});

Bad("a member without vms.nodes, a VM with neither disks nor kernel", () => {
  has(errors(GOOD.replace("    node3: { address: 198.18.0.13, memory_mb: 512 }\n", "")), /^vms\.nodes: expected an entry for member node3 \(address, memory_mb\), got none$/);
  has(errors(GOOD.replace("db: { memory_mb: 256, disks: [db-data]", "db: { memory_mb: 256")), /^vms\.machines\.db: expected disks \(it boots from the first\) or kernel, got neither$/);
});

Bad("vms.backup: its node must be a member, its dir absolute", () => {
  has(errors(`${GOOD}  backup: { dir: /srv/backups, node: node9 }\n`), /^vms\.backup\.node: "node9" is not a member \(node1, node2, node3\)$/);
  has(errors(`${GOOD}  backup: { dir: backups, node: node2 }\n`), /^vms\.backup\.dir: /);
  const ok = parseConfig(`${GOOD}  backup: { dir: /srv/backups, node: node2 }\n`, "test.yaml");
  assert.ok(ok.ok && ok.config.vms?.backup?.node === "node2" && ok.config.vms.backup.dir === "/srv/backups");
});

Bad("schema errors name the path: a bad name, a missing size, an unknown key", () => {
  has(errors(GOOD.replace("cp1: { memory_mb: 128", "Cp1: { memory_mb: 128")), /^vms\.machines\.Cp1: /);
  has(errors(GOOD.replace("cp1-data: { size_mb: 64 }", "cp1-data: { }")), /^vms\.disks\.cp1-data\.size_mb: expected a whole number of MB/);
  has(errors(GOOD.replace("db: { memory_mb: 256,", "db: { memory_mb: 256, memroy: 1,")), /^vms\.machines\.db\.memroy: unknown key/);
  has(errors(GOOD.replace("cp: { anti_affinity: hard }", "cp: { anti_affinity: strict }")), /^vms\.groups\.cp\.anti_affinity: expected "hard" or "soft"/);
});

Bad.run();
