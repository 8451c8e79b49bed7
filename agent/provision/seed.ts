// agent/provision/: the node-image tools (docs/image.md): seed files (this file, seed-gen.ts),
// first boot (seed-apply.ts), writing a disk (flash.ts, gpt.ts); `bollard seed` and
// `bollard flash` (seed-cmd.ts, flash.ts).
//
// `bollard seed`: the seed files of a new cluster, one per node (DESIGN §7, issue 7 item 3).
// A seed is all a freshly flashed node needs: the cluster and node names, its addresses and
// NICs, the founders' brokers, the BMCs and switches, the login password's hash and the
// cluster's join token. `bollard flash` and first boot validate it with `SeedFile`; first
// boot turns it into the node's files with `bollard seed apply` (seed-apply.ts).
// The command: seed-cmd.ts.
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { parseDocument } from "yaml";
import { z } from "zod";
import { DEFAULT_TIMING, checkTiming, type Timing } from "../cluster/timing.ts";
import { NAME_RE, TIMING_KEYS, isHostPort } from "../config/schema.ts";
import { pathText, show, yamlError } from "../config/load.ts";
import { checkNodeTls, isPemCert, isPemKey } from "../bus/tls.ts";

export const SEED_VERSION = 1;
/** The seed's name on the BOLLARD-SEED partition. */
export const SEED_FILE_NAME = "seed.yaml";
export const DEFAULT_BUS_PORT = 1883;

const expect = (what: string) => ({ error: what });
const name = () => z.string(expect("a name of a-z, 0-9 and -, starting with a letter, at most 31 characters")).regex(NAME_RE);

/** "198.18.0.11/24" or "fd00::11/64" */
export function isCidr(v: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(v);
  if (!m) return false;
  const fam = isIP(m[1]!);
  const len = Number(m[2]);
  return fam === 4 ? len <= 32 : fam === 6 ? len <= 128 : false;
}
const cidr = () => z.string(expect("an address with its prefix length, e.g. 198.18.0.11/24")).refine(isCidr);
const ip = () => z.string(expect("an IPv4 or IPv6 address")).refine((v) => isIP(v) !== 0);
const host = () => z.string(expect("a host name or address")).regex(/^[A-Za-z0-9.:-]{1,253}$/);
const ifname = () => z.string(expect("a network interface name (at most 15 characters)")).regex(/^[A-Za-z0-9._-]{1,15}$/);
const port = () => z.number(expect("a port number 1-65535")).int().min(1).max(65535);
const section = <T extends z.core.$ZodLooseShape>(shape: T, what: string) => z.object(shape, expect(`a mapping (${what})`)).strict();

export const SeedFile = section(
  {
    version: z.literal(SEED_VERSION, expect(`${SEED_VERSION} (the seed format)`)),
    cluster: name(),
    node: name(),
    join_token: z.string(expect("the join token: at least 16 characters, no spaces")).regex(/^[\x21-\x7e]{16,512}$/),
    members: z
      .array(section({ name: name(), address: z.string(expect("host:port")).refine(isHostPort) }, "name and address"), expect("a list of 1 to 15 founders"))
      .min(1)
      .max(15),
    network: section(
      {
        data: section(
          {
            interfaces: z.array(ifname(), expect("a list of 1 to 4 NIC names")).min(1).max(4),
            address: cidr(),
            gateway: ip().optional(),
          },
          "interfaces, address, gateway",
        ),
        mgmt: section({ interface: ifname(), address: cidr(), gateway: ip().optional() }, "interface, address, gateway").optional(),
        dns: z.array(ip(), expect("a list of addresses")).max(3).default([]),
        ntp: z.array(host(), expect("a list of NTP servers")).max(8).default([]),
        vip: cidr().optional(),
      },
      "data, mgmt, dns, ntp, vip",
    ),
    bmc: z
      .record(
        name(),
        section(
          {
            host: host(),
            port: port().default(623),
            user: z.string(expect("a BMC user name")).min(1).max(16),
            password: z.string(expect("a BMC password (IPMI: at most 20 characters)")).max(20).optional(),
            cipher_suite: z.number(expect("an IPMI cipher suite number 0-17")).int().min(0).max(17).default(17),
          },
          "host, port, user, password, cipher_suite",
        ),
        expect("a mapping of node name to its BMC"),
      )
      .default({}),
    switches: z
      .array(
        section(
          {
            name: name(),
            host: host(),
            port: port().default(161),
            read_community: z.string(expect("an SNMP community")).min(1).max(64).default("public"),
            write_community: z.string(expect("an SNMP community")).min(1).max(64).optional(),
            ports: z.record(name(), z.string(expect("the switch port (ifDescr)")).min(1).max(64), expect("a mapping of node name to port")).default({}),
          },
          "name, host, port, read_community, write_community, ports",
        ),
        expect("a list of switches"),
      )
      .max(4)
      .default([]),
    // the cluster core's timings (bollard.yaml `timing`); only for unusual environments
    timing: z
      .partialRecord(
        z.enum(Object.values(TIMING_KEYS) as [string, ...string[]], expect(`one of ${Object.values(TIMING_KEYS).join(", ")}`)),
        z.number(expect("a number > 0")).positive().max(3_600_000),
        expect("a mapping of timing keys (docs/config.md)"),
      )
      .optional(),
    // the bus's TLS (docs/bus.md "TLS and the trust model"): the cluster CA's certificate and
    // this node's own key and certificate; the CA's key is never in a seed
    tls: section(
      {
        ca_cert: z.string(expect("the cluster CA's certificate, PEM")).max(8192).refine(isPemCert),
        cert: z.string(expect("this node's certificate, PEM")).max(8192).refine(isPemCert),
        key: z.string(expect("this node's private key, PEM")).max(8192).refine(isPemKey),
      },
      "ca_cert, cert, key",
    ),
    login: section(
      { root_password_hash: z.string(expect("a crypt(3) hash ($6$... or $y$...)")).regex(/^\$(6|y|5)\$[./A-Za-z0-9$=,]+$/).optional() },
      "root_password_hash",
    ).prefault({}),
  },
  "a bollard seed",
);
export type Seed = z.infer<typeof SeedFile>;

export type SeedResult = { ok: true; seed: Seed } | { ok: false; errors: string[] };

/** The address part of "198.18.0.11/24". */
export const addrOf = (c: string) => c.slice(0, c.indexOf("/"));
/** "198.18.0.11:1883" -> "198.18.0.11", "[fd00::1]:1883" -> "fd00::1" */
export const hostOf = (hp: string) => hp.slice(0, hp.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");

/** Validates seed text; every error names its path, what was expected and what was found. */
export function parseSeed(text: string, source: string): SeedResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) return { ok: false, errors: doc.errors.map((e) => `${source}: YAML syntax: ${yamlError(e.message)}`) };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { ok: false, errors: [`${source}: YAML: ${(e as Error).message}`] };
  }
  const r = SeedFile.safeParse(raw ?? undefined, { reportInput: true });
  if (!r.success) {
    return {
      ok: false,
      errors: r.error.issues.map((i) =>
        i.code === "unrecognized_keys"
          ? `${pathText(i.path) || "(top level)"}: unknown key${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => JSON.stringify(k)).join(", ")}` +
            (pathText(i.path) === "timing" ? `; expected one of ${Object.values(TIMING_KEYS).join(", ")}` : "")
          : `${pathText(i.path) || "(top level)"}: expected ${i.message}, got ${show(i.input)}`,
      ),
    };
  }
  const errors = seedRelations(r.data);
  return errors.length ? { ok: false, errors } : { ok: true, seed: r.data };
}

function seedRelations(s: Seed): string[] {
  const errs: string[] = [];
  const names = s.members.map((m) => m.name);
  const dupes = (xs: string[]) => [...new Set(xs.filter((x, i) => xs.indexOf(x) !== i))];
  dupes(names).forEach((n) => errs.push(`members: expected unique names, got ${JSON.stringify(n)} more than once`));
  dupes(s.members.map((m) => m.address)).forEach((a) => errs.push(`members: expected one broker address per member, got ${JSON.stringify(a)} more than once`));
  const self = s.members.find((m) => m.name === s.node);
  const dataIp = addrOf(s.network.data.address);
  if (self && hostOf(self.address) !== dataIp) {
    errs.push(`members: ${s.node}'s broker address ${self.address} is not on its data address ${dataIp} (network.data.address)`);
  }
  if (!self && s.members.some((m) => hostOf(m.address) === dataIp)) {
    errs.push(`network.data.address: ${dataIp} is already a founder's broker address (members)`);
  }
  dupes(s.network.data.interfaces).forEach((n) => errs.push(`network.data.interfaces: ${n} more than once`));
  if (s.network.mgmt && s.network.data.interfaces.includes(s.network.mgmt.interface)) {
    errs.push(`network.mgmt.interface: ${s.network.mgmt.interface} is also a data interface (network.data.interfaces)`);
  }
  dupes(s.switches.map((w) => w.name)).forEach((n) => errs.push(`switches: expected unique names, got ${JSON.stringify(n)} more than once`));
  if (s.timing) for (const msg of checkTiming(seedTiming(s))) errs.push(`timing: ${msg}`);
  const ip = self ? hostOf(self.address) : dataIp;
  errs.push(...checkNodeTls({ ca: s.tls.ca_cert, cert: s.tls.cert, key: s.tls.key }, {
    node: s.node, ip: isIP(ip) ? ip : undefined, now: Date.now(), names: { ca: "tls.ca_cert", cert: "tls.cert", key: "tls.key" },
  }));
  return errs;
}

/** The timings a seed gives the agent: the defaults, with the seed's own over them. */
export function seedTiming(s: Seed): Timing {
  const t = { ...DEFAULT_TIMING };
  for (const [k, file] of Object.entries(TIMING_KEYS) as [keyof Timing, string][]) if (s.timing?.[file] !== undefined) t[k] = s.timing[file]!;
  return t;
}

/** The seed as YAML, commented for the operator who opens it. Strings are JSON-quoted. */
export function renderSeed(s: Seed, by: string): string {
  const q = (v: string) => JSON.stringify(v);
  const flow = (o: Record<string, string | number | undefined>) =>
    `{ ${Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${typeof v === "number" ? v : q(v!)}`).join(", ")} }`;
  const n = s.network;
  const out = [
    `# bollard seed: node ${s.node} of cluster ${s.cluster}, written by ${by}.`,
    "# SECRET: it holds the cluster's join token. Put it on the node's BOLLARD-SEED partition as",
    `# ${SEED_FILE_NAME}: bollard flash IMAGE DEVICE --seed THIS_FILE. Check it: bollard seed check FILE`,
    `version: ${s.version}`,
    `cluster: ${s.cluster}`,
    `node: ${s.node}`,
    `join_token: ${q(s.join_token)}`,
    "members:                  # the founders and their brokers: the cluster's first membership",
    ...s.members.map((m) => `  - ${flow({ name: m.name, address: m.address })}`),
    "network:",
    "  data:                   # bond0, active-backup over the data NICs (one to each switch)",
    `    interfaces: [${n.data.interfaces.map(q).join(", ")}]`,
    `    address: ${q(n.data.address)}`,
    ...(n.data.gateway ? [`    gateway: ${q(n.data.gateway)}`] : []),
    ...(n.mgmt
      ? ["  mgmt:                   # the management NIC", `    interface: ${q(n.mgmt.interface)}`, `    address: ${q(n.mgmt.address)}`, ...(n.mgmt.gateway ? [`    gateway: ${q(n.mgmt.gateway)}`] : [])]
      : []),
    `  dns: [${n.dns.map(q).join(", ")}]`,
    `  ntp: [${n.ntp.map(q).join(", ")}]${n.ntp.length ? "" : "   # none: the nodes keep time among themselves"}`,
    ...(n.vip ? [`  vip: ${q(n.vip)}`] : []),
    `bmc:${Object.keys(s.bmc).length ? "                      # every node's BMC (fencing: IPMI chassis power off)" : " {}"}`,
    ...Object.entries(s.bmc).map(([k, b]) => `  ${k}: ${flow({ host: b.host, port: b.port, user: b.user, password: b.password, cipher_suite: b.cipher_suite })}`),
    `switches:${s.switches.length ? "                 # SNMP v2c, IF-MIB ports by ifDescr (fencing: port shutdown)" : " []"}`,
    ...s.switches.flatMap((w) => [
      `  - ${flow({ name: w.name, host: w.host, port: w.port, read_community: w.read_community, write_community: w.write_community })
        .replace(/ }$/, ",")}`,
      `      ports: ${flow(w.ports)} }`,
    ]),
    ...(s.timing ? [`timing: { ${Object.entries(s.timing).map(([k, v]) => `${k}: ${v}`).join(", ")} }   # the cluster core's, docs/config.md`] : []),
    "tls:                      # the bus: the cluster CA's certificate, this node's key and certificate",
    ...pemBlock("ca_cert", s.tls.ca_cert),
    ...pemBlock("cert", s.tls.cert),
    ...pemBlock("key", s.tls.key),
    "login:",
    s.login.root_password_hash ? `  root_password_hash: ${q(s.login.root_password_hash)}` : "  {}",
  ];
  return out.join("\n").replace("login:\n  {}", "login: {}") + "\n";
}

/** `  key: |` and the PEM's lines indented under it (a YAML literal block keeps the newlines). */
function pemBlock(key: string, pem: string): string[] {
  return [`  ${key}: |`, ...pem.trim().split(/\r?\n/).map((l) => `    ${l}`)];
}

/** A fresh join token: 32 random bytes, base64url (43 characters). */
export function newJoinToken(rand: (n: number) => Buffer = randomBytes): string {
  return rand(32).toString("base64url");
}

/** Reads and validates a seed file. */
export async function readSeed(file: string): Promise<SeedResult> {
  const { readFile } = await import("node:fs/promises");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    return { ok: false, errors: [`cannot read the seed: ${(e as Error).message}`] };
  }
  return parseSeed(text, file);
}

export function seedErrors(file: string, errors: string[]): string {
  return `${file}: not a valid seed: ${errors.length} error${errors.length === 1 ? "" : "s"}:\n${errors.map((e) => `  ${e}`).join("\n")}`;
}

export function describeSeed(s: Seed): string {
  const founder = s.members.some((m) => m.name === s.node);
  return (
    `node ${s.node} of cluster ${s.cluster} (${founder ? "founder" : "joins"}; founders ${s.members.map((m) => m.name).join(", ")}), ` +
    `data ${s.network.data.address} on bond0 (${s.network.data.interfaces.join(", ")})` +
    (s.network.mgmt ? `, mgmt ${s.network.mgmt.address} on ${s.network.mgmt.interface}` : "")
  );
}
