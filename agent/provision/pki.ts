// The cluster's certificate authority (docs/bus.md "TLS and the trust model"): `bollard seed`
// makes one CA per cluster and one key and certificate per node, which the node's seed
// carries. The CA key stays with the operator (DIR/ca/ca.key beside the seeds); no node ever
// holds it. node:crypto reads X.509 but cannot write it, so certificates are made by the
// `openssl` command (Debian's openssl package, in the node image), never by hand-written ASN.1.
//
// Keys are EC P-256 (RFC 5480): small, fast to make, and what both Node's TLS and Mosquitto's
// OpenSSL accept. A node certificate carries CN = the node's name and subjectAltName = its data
// and management addresses and the VIP (IP) and its name (DNS) (RFC 5280 §4.2.1.6), with
// extendedKeyUsage serverAuth and clientAuth: the same certificate is its broker's, its
// client's and its web console's.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A key and its certificate, both PEM. */
export interface KeyCert {
  key: string;
  cert: string;
}

export interface PkiOptions {
  /** the openssl binary; default "openssl" on PATH */
  openssl?: string;
  /** validity; default 20 years for the CA, 10 for a node */
  days?: number;
}

export const CA_DAYS = 7305;
export const NODE_DAYS = 3653;

export class PkiError extends Error {}

function inTemp<T>(f: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "bollard-pki-"));
  try {
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(o: PkiOptions, args: string[]): void {
  try {
    execFileSync(o.openssl ?? "openssl", args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OPENSSL_CONF: "/dev/null" } });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer; message: string };
    if (err.code === "ENOENT") throw new PkiError("the openssl command is not installed (apt-get install openssl)");
    throw new PkiError(`openssl ${args[0]} failed: ${(err.stderr?.toString() || err.message).trim().split("\n")[0]}`);
  }
}

/** A subject's RDN value: openssl's -subj takes "/" and "\" escaped; names here are [a-z0-9-]. */
const rdn = (v: string) => v.replace(/[/\\]/g, (c) => `\\${c}`);

/** A new CA for cluster `cluster`: self-signed, CA:TRUE with pathlen 0 (it signs node certificates only). */
export function makeCa(cluster: string, o: PkiOptions = {}): KeyCert {
  return inTemp((d) => {
    run(o, [
      "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
      "-keyout", join(d, "ca.key"), "-out", join(d, "ca.crt"), "-days", String(o.days ?? CA_DAYS),
      "-subj", `/O=bollard/OU=${rdn(cluster)}/CN=bollard ${rdn(cluster)} cluster CA`,
      "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
      "-addext", "subjectKeyIdentifier=hash",
    ]);
    return { key: readFileSync(join(d, "ca.key"), "utf8"), cert: readFileSync(join(d, "ca.crt"), "utf8") };
  });
}

export interface NodeIdentity {
  cluster: string;
  node: string;
  /** addresses its broker is reached at (subjectAltName IP) */
  ips: string[];
  /** names it is reached by (subjectAltName DNS); the node's name is always added */
  dns?: string[];
}

/** A fresh key and a certificate for one node, signed by `ca` (OpenSSL 3's `req -x509 -CA`: one process). */
export function issueNodeCert(ca: KeyCert, id: NodeIdentity, o: PkiOptions = {}): KeyCert {
  const san = [...id.ips.map((a) => `IP:${a}`), ...[id.node, ...(id.dns ?? [])].map((n) => `DNS:${n}`)];
  return inTemp((d) => {
    writeFileSync(join(d, "ca.key"), ca.key, { mode: 0o600 });
    writeFileSync(join(d, "ca.crt"), ca.cert);
    run(o, [
      "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
      "-keyout", join(d, "node.key"), "-out", join(d, "node.crt"), "-days", String(o.days ?? NODE_DAYS),
      "-subj", `/O=bollard/OU=${rdn(id.cluster)}/CN=${rdn(id.node)}`,
      "-CA", join(d, "ca.crt"), "-CAkey", join(d, "ca.key"),
      // a random positive serial of 16 octets (RFC 5280 §4.1.2.2: unique per CA, at most 20 octets)
      "-set_serial", `0x${((randomBytes(1)[0]! & 0x7f) | 0x10).toString(16)}${randomBytes(15).toString("hex")}`,
      "-addext", "basicConstraints=critical,CA:FALSE",
      "-addext", "keyUsage=critical,digitalSignature,keyAgreement",
      "-addext", "extendedKeyUsage=serverAuth,clientAuth",
      "-addext", `subjectAltName=${[...new Set(san)].join(",")}`,
      "-addext", "subjectKeyIdentifier=hash",
      "-addext", "authorityKeyIdentifier=keyid",
    ]);
    return { key: readFileSync(join(d, "node.key"), "utf8"), cert: readFileSync(join(d, "node.crt"), "utf8") };
  });
}
