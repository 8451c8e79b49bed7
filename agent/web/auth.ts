// The web console's authentication (issue 24 item 2), pure but for node:crypto: password
// hashes (scrypt, RFC 7914), the lockout with back-off after failed logins, the signed session
// token the cookie carries, and the CSRF token every action must send back.
//
// Sessions are stateless tokens signed with a key every node derives alike (from the join
// token, HKDF RFC 5869), so a session made on one node is good on any other: the VIP can move
// under a watching browser. A token names the user and a fingerprint of the user's password
// hash: a password change or a removal (committed in the cluster config) ends every session of
// that user on every node. Logout revokes the token on the node that served it (and the
// cookie is cleared); the absolute and idle expiries bound the rest.
import { createHash, createHmac, hkdfSync, randomBytes, scrypt, timingSafeEqual } from "node:crypto";

export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** Whether `have` may use what needs `need`: admin > operator > viewer. */
export const allows = (have: Role, need: Role) => ROLES.indexOf(have) >= ROLES.indexOf(need);

// ---- password hashes --------------------------------------------------------------------

/** scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, ~130 ms on the lab's machine). */
export const SCRYPT = { ln: 15, r: 8, p: 1 };
const KEYLEN = 32;
const HASH_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$/;

export const isPasswordHash = (s: string) => HASH_RE.test(s);

/** Passwords: 10 to 200 characters; no rule beyond length (NIST SP 800-63B §5.1.1). */
export function passwordProblem(pw: string): string | null {
  if (pw.length < 10) return "expected at least 10 characters";
  if (pw.length > 200) return "expected at most 200 characters";
  return null;
}

function scryptAsync(pw: string, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** ln;
  return new Promise((resolve, reject) =>
    scrypt(pw.normalize("NFKC"), salt, KEYLEN, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (e, k) => (e ? reject(e) : resolve(k))),
  );
}

const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");

/** `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (the PHC string format, unpadded base64). */
export async function hashPassword(pw: string, cost = SCRYPT, salt = randomBytes(16)): Promise<string> {
  const k = await scryptAsync(pw, salt, cost.ln, cost.r, cost.p);
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${b64(salt)}$${b64(k)}`;
}

/** Whether `pw` matches `hash`; false (never a throw) for a hash that is not one of ours. */
export async function verifyPassword(pw: string, hash: string): Promise<boolean> {
  const m = HASH_RE.exec(hash);
  if (!m) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 10 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 4) return false;
  const want = Buffer.from(m[5]!, "base64");
  const got = await scryptAsync(pw, Buffer.from(m[4]!, "base64"), ln, r, p);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A hash to verify against when the user does not exist, so that the answer takes as long. */
export const DUMMY_HASH = "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/** A short fingerprint of a password hash: sessions name it, so a new password ends them. */
export const fingerprint = (hash: string) => createHash("sha256").update(hash).digest("base64url").slice(0, 12);

// ---- lockout ----------------------------------------------------------------------------

export interface LockoutOptions {
  /** failures allowed before the first lock */
  free: number;
  /** the first lock, ms; each further failure doubles it */
  baseMs: number;
  maxMs: number;
  /** a key with no failure for this long is forgotten */
  forgetMs: number;
  /** at most this many keys are kept (the oldest go first) */
  maxKeys: number;
}

export const LOCKOUT: LockoutOptions = { free: 5, baseMs: 1000, maxMs: 15 * 60_000, forgetMs: 60 * 60_000, maxKeys: 10_000 };

/**
 * Failed logins by key ("user:alice", "addr:198.18.1.1"): after `free` failures each further
 * one locks the key for baseMs x 2^(n - free - 1), at most maxMs. A success clears the key.
 */
export class Lockout {
  private readonly keys = new Map<string, { failures: number; until: number; last: number }>();

  constructor(private readonly o: LockoutOptions = LOCKOUT) {}

  /** ms until `key` may try again; 0: now. */
  lockedFor(key: string, now: number): number {
    const k = this.keys.get(key);
    if (!k) return 0;
    if (now - k.last > this.o.forgetMs) {
      this.keys.delete(key);
      return 0;
    }
    return Math.max(0, k.until - now);
  }

  fail(key: string, now: number): number {
    const k = this.keys.get(key) ?? { failures: 0, until: 0, last: now };
    k.failures++;
    k.last = now;
    const over = k.failures - this.o.free;
    k.until = over > 0 ? now + Math.min(this.o.maxMs, this.o.baseMs * 2 ** Math.min(over - 1, 30)) : 0;
    this.keys.delete(key);
    this.keys.set(key, k); // newest last: the eviction below takes the oldest
    while (this.keys.size > this.o.maxKeys) this.keys.delete(this.keys.keys().next().value!);
    return k.failures;
  }

  succeed(key: string): void {
    this.keys.delete(key);
  }

  get size(): number {
    return this.keys.size;
  }
}

// ---- session tokens and CSRF --------------------------------------------------------------

export interface SessionOptions {
  /** a session ends this long after login, whatever happens */
  maxMs: number;
  /** ... and after this long without a request */
  idleMs: number;
}

export const SESSION: SessionOptions = { maxMs: 8 * 3600_000, idleMs: 30 * 60_000 };
/** the cookie is re-issued (its `seen` moved) at most this often */
export const RENEW_MS = 60_000;

export interface Session {
  /** random, names the session (revocation, CSRF) */
  sid: string;
  user: string;
  /** fingerprint() of the user's password hash at login */
  fp: string;
  /** wall ms: login, last renewal, absolute end */
  iat: number;
  seen: number;
  exp: number;
}

export type SessionCheck = { ok: true; session: Session; renew: boolean } | { ok: false; error: string };

/** The key sessions are signed with: HKDF-SHA256 of the cluster's join token. */
export function sessionKey(secret: Buffer, cluster: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, Buffer.from(cluster), "bollard web session v1", 32));
}

const SID_RE = /^[0-9a-f]{32}$/;
const TOKEN_RE = /^[A-Za-z0-9_-]{10,600}\.[A-Za-z0-9_-]{43}$/;

export class Sessions {
  private readonly revoked = new Map<string, number>();

  constructor(
    private readonly key: Buffer,
    readonly o: SessionOptions = SESSION,
  ) {}

  issue(user: string, hash: string, now: number): { token: string; session: Session } {
    const s: Session = { sid: randomBytes(16).toString("hex"), user, fp: fingerprint(hash), iat: now, seen: now, exp: now + this.o.maxMs };
    return { token: this.sign(s), session: s };
  }

  sign(s: Session): string {
    const body = Buffer.from(JSON.stringify([1, s.sid, s.user, s.fp, s.iat, s.seen, s.exp])).toString("base64url");
    return `${body}.${this.mac(body)}`;
  }

  /** The token's session, if it is ours, unexpired, unrevoked and its user's hash unchanged. */
  check(token: string, now: number, hashOf: (user: string) => string | null): SessionCheck {
    if (!TOKEN_RE.test(token)) return { ok: false, error: "session cookie: not a bollard session token" };
    const [body, mac] = token.split(".") as [string, string];
    const want = Buffer.from(this.mac(body));
    if (!timingSafeEqual(want, Buffer.from(mac))) return { ok: false, error: "session cookie: bad signature" };
    let a: unknown;
    try {
      a = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    } catch {
      return { ok: false, error: "session cookie: unreadable" };
    }
    if (!Array.isArray(a) || a.length !== 7 || a[0] !== 1 || !SID_RE.test(String(a[1])) || typeof a[2] !== "string" || typeof a[3] !== "string" || ![a[4], a[5], a[6]].every(Number.isFinite)) {
      return { ok: false, error: "session cookie: unreadable" };
    }
    const s: Session = { sid: a[1], user: a[2], fp: a[3], iat: a[4], seen: a[5], exp: a[6] };
    if (now >= s.exp) return { ok: false, error: "session expired: log in again" };
    if (now - s.seen >= this.o.idleMs) return { ok: false, error: "session expired (idle): log in again" };
    if (this.revoked.has(s.sid)) return { ok: false, error: "session ended (logged out)" };
    const hash = hashOf(s.user);
    if (hash === null) return { ok: false, error: `session ended: no user ${s.user} any more` };
    if (fingerprint(hash) !== s.fp) return { ok: false, error: "session ended: the password was changed" };
    return { ok: true, session: s, renew: now - s.seen >= RENEW_MS };
  }

  renewed(s: Session, now: number): string {
    return this.sign({ ...s, seen: now });
  }

  revoke(s: Session, now: number): void {
    for (const [sid, exp] of this.revoked) if (exp <= now) this.revoked.delete(sid);
    this.revoked.set(s.sid, s.exp);
  }

  /** The CSRF token of a session: the page sends it back in X-CSRF-Token with every action. */
  csrf(s: Session): string {
    return createHmac("sha256", this.key).update(`csrf\n${s.sid}`).digest("base64url");
  }

  csrfOk(s: Session, given: string | undefined): boolean {
    if (typeof given !== "string" || given.length !== 43) return false;
    return timingSafeEqual(Buffer.from(this.csrf(s)), Buffer.from(given));
  }

  private mac(body: string): string {
    return createHmac("sha256", this.key).update(`session\n${body}`).digest("base64url");
  }
}

/** The cookie's name: `__Host-` makes the browser insist on Secure, Path=/ and no Domain (RFC 6265bis §4.1.3.2). */
export const COOKIE = "__Host-bollard";

export function sessionCookie(token: string, maxAgeS: number): string {
  return `${COOKIE}=${token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeS))}`;
}

export const clearCookie = () => `${COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`;

/** The session cookie's value from a Cookie header, or null. */
export function cookieToken(header: string | undefined): string | null {
  if (!header || header.length > 8192) return null;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === COOKIE) return part.slice(i + 1).trim();
  }
  return null;
}
