// TLS on the bus (DESIGN §3, docs/bus.md "TLS and the trust model"): every broker listens
// with TLS and require_certificate; every agent connects with its node's key and certificate
// and checks the broker's: signed by the cluster CA (and nothing else: `ca` replaces Node's
// default roots), the broker's address in its subjectAltName (RFC 6125 via
// tls.checkServerIdentity), and, when the broker is a known member, CN = that member's name.
// So a message's sender, the broker it came from (inbox.ts), is the member the CA named.
// Also the checks of a node's files at start-up and in its seed, each a clear error.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { checkServerIdentity, type PeerCertificate } from "node:tls";

/** The cluster CA's certificate and this node's key and certificate, PEM. */
export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

const PEM_CERT = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*$/;
const PEM_KEY = /^-----BEGIN (?:EC |RSA )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END (?:EC |RSA )?PRIVATE KEY-----\s*$/;

export const isPemCert = (s: string): boolean => PEM_CERT.test(s);
export const isPemKey = (s: string): boolean => PEM_KEY.test(s);

/** The CN of a subject as node:crypto prints it ("O=bollard\nOU=lab\nCN=node1"). */
export function commonName(subject: string): string | null {
  for (const line of subject.split("\n")) if (line.startsWith("CN=")) return line.slice(3);
  return null;
}

export interface CertFacts {
  cn: string | null;
  ips: string[];
  dns: string[];
  notAfter: number;
  fingerprint: string;
}

export function certFacts(pem: string): CertFacts {
  const c = new X509Certificate(pem);
  const san = (c.subjectAltName ?? "").split(/,\s*/).filter(Boolean);
  return {
    cn: commonName(c.subject),
    ips: san.filter((s) => s.startsWith("IP Address:")).map((s) => s.slice(11)),
    dns: san.filter((s) => s.startsWith("DNS:")).map((s) => s.slice(4)),
    notAfter: Date.parse(c.validTo),
    fingerprint: c.fingerprint256,
  };
}

export interface NodeCertExpect {
  /** the node the certificate must name (CN) */
  node?: string;
  /** an address it must carry in its subjectAltName: the node's broker */
  ip?: string;
  /** wall ms */
  now: number;
  /** `<where>.ca_cert`, ... as the errors name them (a seed's keys, the config's) */
  names?: { ca: string; cert: string; key: string };
}

/**
 * Every reason the three PEMs cannot serve as this node's bus identity, each naming the item:
 * unreadable, the CA not a CA, the certificate not issued by it, the key not the certificate's,
 * another node's, without the broker's address, expired.
 */
export function checkNodeTls(m: TlsMaterial, e: NodeCertExpect): string[] {
  const n = e.names ?? { ca: "ca", cert: "cert", key: "key" };
  const errs: string[] = [];
  let ca: X509Certificate | null = null;
  let cert: X509Certificate | null = null;
  try {
    ca = new X509Certificate(m.ca);
    if (!ca.ca) errs.push(`${n.ca}: expected a CA certificate (basicConstraints CA:TRUE), got an end-entity one`);
  } catch (x) {
    errs.push(`${n.ca}: expected a PEM certificate, got one that does not parse (${(x as Error).message})`);
  }
  try {
    cert = new X509Certificate(m.cert);
  } catch (x) {
    errs.push(`${n.cert}: expected a PEM certificate, got one that does not parse (${(x as Error).message})`);
  }
  let key: ReturnType<typeof createPrivateKey> | null = null;
  try {
    key = createPrivateKey(m.key);
  } catch (x) {
    errs.push(`${n.key}: expected a PEM private key, got one that does not parse (${(x as Error).message})`);
  }
  if (ca && cert && !(cert.checkIssued(ca) && cert.verify(ca.publicKey))) errs.push(`${n.cert}: not issued by the CA in ${n.ca} (another cluster's certificate?)`);
  if (cert && key && !cert.checkPrivateKey(key)) errs.push(`${n.key}: not the key of the certificate in ${n.cert}`);
  if (cert) {
    const f = certFacts(m.cert);
    if (e.node && f.cn !== e.node) errs.push(`${n.cert}: issued to ${JSON.stringify(f.cn)}, expected ${JSON.stringify(e.node)}`);
    if (e.ip && !cert.checkIP(e.ip)) errs.push(`${n.cert}: its subjectAltName (${[...f.ips, ...f.dns].join(", ") || "none"}) lacks the broker address ${e.ip}`);
    if (Number.isFinite(f.notAfter) && f.notAfter < e.now) errs.push(`${n.cert}: expired on ${new Date(f.notAfter).toISOString()}`);
    if (Date.parse(cert.validFrom) > e.now + 86_400_000) errs.push(`${n.cert}: not valid before ${cert.validFrom} (is this node's clock right?)`);
  }
  return errs;
}

/** Node's and OpenSSL's error codes of a certificate that does not verify, on either side
 * (ours refused by the broker: ERR_SSL_..._ALERT_...; the broker's by us: CERT_..., UNABLE_TO_...). */
export function isTlsFault(code: unknown): boolean {
  return typeof code === "string" && /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/.test(code);
}

/** What mqtt.js (tls.connect) takes to log in with a certificate and check the broker's. */
export interface ClientTls {
  ca: string;
  cert: string;
  key: string;
  rejectUnauthorized: true;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
}

/**
 * Client options for one broker. `broker`: the member whose broker it is (its certificate must
 * name it); null for a broker known only by address (a joiner's peers: any member's will do).
 */
export function clientTls(m: TlsMaterial, broker: string | null): ClientTls {
  return {
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    rejectUnauthorized: true,
    checkServerIdentity: (host, cert) => {
      const err = checkServerIdentity(host, cert);
      if (err) return err;
      const cn = cert.subject?.CN;
      if (broker !== null && cn !== broker) {
        return Object.assign(new Error(`the broker at ${host} presented the certificate of ${JSON.stringify(cn)}, expected ${JSON.stringify(broker)}'s`), { code: "ERR_TLS_CERT_ALTNAME_INVALID" });
      }
      return undefined;
    },
  };
}
