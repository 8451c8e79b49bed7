// The web console's authentication (agent/web/auth.ts, users.ts): scrypt hashes, the lockout
// with back-off, session tokens (expiry, idle, revocation, a changed password), the CSRF token
// and the cookie, and the accounts as the cluster config holds them. Time is passed in.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  COOKIE, DUMMY_HASH, Lockout, Sessions, allows, cookieToken, fingerprint, hashPassword, isPasswordHash, passwordProblem, sessionCookie, sessionKey, verifyPassword,
} from "../../agent/web/auth.ts";
import { lastAdmin, redactFlags, redactText, removeUserCommand, setUserCommand, usersOf } from "../../agent/web/users.ts";
import { Command } from "../../agent/bus/messages.ts";

const FAST = { ln: 10, r: 8, p: 1 };

const Hash = suite("password hashes");

Hash("a hash verifies its password and no other, and is a scrypt PHC string", async () => {
  const h = await hashPassword("correct horse battery", FAST);
  assert.ok(isPasswordHash(h), h);
  assert.match(h, /^\$scrypt\$ln=10,r=8,p=1\$/);
  assert.ok(await verifyPassword("correct horse battery", h));
  assert.not.ok(await verifyPassword("correct horse batterz", h));
  assert.not.ok(await verifyPassword("", h));
});

Hash("two hashes of one password differ (a random salt each)", async () => {
  const a = await hashPassword("same password!", FAST);
  const b = await hashPassword("same password!", FAST);
  assert.is.not(a, b);
  assert.ok(await verifyPassword("same password!", b));
});

Hash("a malformed or absurd hash is a plain no, never a throw", async () => {
  for (const h of ["", "x", "$scrypt$ln=99,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "$7$101$abc$def"]) {
    assert.is(await verifyPassword("whatever12", h), false, h);
  }
  assert.ok(isPasswordHash(DUMMY_HASH));
  assert.is(await verifyPassword("anything at all", DUMMY_HASH), false);
});

Hash("passwords: 10 to 200 characters", () => {
  assert.ok(passwordProblem("short"));
  assert.is(passwordProblem("ten chars!"), null);
  assert.ok(passwordProblem("x".repeat(201)));
});

Hash.run();

const Lock = suite("lockout");

Lock("five failures are free, then each locks twice as long, up to the cap; a success clears", () => {
  const l = new Lockout({ free: 5, baseMs: 1000, maxMs: 8000, forgetMs: 3600_000, maxKeys: 100 });
  let t = 0;
  for (let i = 0; i < 5; i++) l.fail("user:a", t);
  assert.is(l.lockedFor("user:a", t), 0);
  l.fail("user:a", t);
  assert.is(l.lockedFor("user:a", t), 1000);
  assert.is(l.lockedFor("user:a", t + 400), 600);
  l.fail("user:a", (t = 2000));
  assert.is(l.lockedFor("user:a", t), 2000);
  l.fail("user:a", t);
  l.fail("user:a", t);
  assert.is(l.lockedFor("user:a", t), 8000); // 4000 -> 8000, capped
  l.fail("user:a", t);
  assert.is(l.lockedFor("user:a", t), 8000);
  assert.is(l.lockedFor("user:b", t), 0, "other keys are not locked");
  l.succeed("user:a");
  assert.is(l.lockedFor("user:a", t), 0);
});

Lock("a key with no failure for forgetMs is forgotten; the table is bounded", () => {
  const l = new Lockout({ free: 1, baseMs: 1000, maxMs: 60_000, forgetMs: 10_000, maxKeys: 3 });
  l.fail("k", 0);
  l.fail("k", 0);
  assert.ok(l.lockedFor("k", 500) > 0);
  assert.is(l.lockedFor("k", 10_001), 0);
  for (const k of ["a", "b", "c", "d"]) l.fail(k, 0);
  assert.is(l.size, 3);
});

Lock.run();

const Sess = suite("sessions");
const key = sessionKey(Buffer.from("a join token of the cluster"), "lab");
const HASH = "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const users = (h: string | null = HASH) => (u: string) => (u === "alice" ? h : null);

Sess("a token checks on any node holding the same key; not on one with another key", () => {
  const a = new Sessions(key);
  const { token } = a.issue("alice", HASH, 1000);
  const b = new Sessions(sessionKey(Buffer.from("a join token of the cluster"), "lab"));
  const r = b.check(token, 2000, users());
  assert.ok(r.ok);
  if (r.ok) assert.is(r.session.user, "alice");
  const other = new Sessions(sessionKey(Buffer.from("another cluster's token"), "lab"));
  assert.equal(other.check(token, 2000, users()), { ok: false, error: "session cookie: bad signature" });
});

Sess("expiry: absolute and idle; renewal moves the idle clock", () => {
  const s = new Sessions(key, { maxMs: 10_000, idleMs: 3000 });
  const { token, session } = s.issue("alice", HASH, 0);
  assert.ok(s.check(token, 2999, users()).ok);
  assert.equal(s.check(token, 3000, users()), { ok: false, error: "session expired (idle): log in again" });
  const renewed = s.renewed(session, 2500);
  assert.ok(s.check(renewed, 5000, users()).ok);
  const late = s.renewed(session, 9000);
  assert.equal(s.check(late, 10_000, users()), { ok: false, error: "session expired: log in again" });
});

Sess("a changed password or a removed user ends the session; logout revokes it", () => {
  const s = new Sessions(key);
  const { token, session } = s.issue("alice", HASH, 0);
  assert.equal(s.check(token, 1, users(HASH.replace("BBB", "CCC"))), { ok: false, error: "session ended: the password was changed" });
  assert.equal(s.check(token, 1, users(null)), { ok: false, error: "session ended: no user alice any more" });
  s.revoke(session, 1);
  assert.equal(s.check(token, 2, users()), { ok: false, error: "session ended (logged out)" });
});

Sess("a tampered, truncated or garbage cookie is refused with a reason", () => {
  const s = new Sessions(key);
  const { token } = s.issue("alice", HASH, 0);
  const [body, mac] = token.split(".");
  const forged = Buffer.from(JSON.stringify([1, "0".repeat(32), "alice", fingerprint(HASH), 0, 0, 9e15])).toString("base64url");
  assert.equal(s.check(`${forged}.${mac}`, 1, users()), { ok: false, error: "session cookie: bad signature" });
  for (const t of ["", "x", `${body}`, `${body}.`, "a.b", "<script>.x", `${body}.${mac}x`]) assert.is(s.check(t, 1, users()).ok, false, t);
});

Sess("CSRF: the session's token passes, another session's or none fails", () => {
  const s = new Sessions(key);
  const a = s.issue("alice", HASH, 0).session;
  const b = s.issue("alice", HASH, 0).session;
  assert.ok(s.csrfOk(a, s.csrf(a)));
  assert.not.ok(s.csrfOk(a, s.csrf(b)));
  assert.not.ok(s.csrfOk(a, undefined));
  assert.not.ok(s.csrfOk(a, ""));
  assert.not.ok(s.csrfOk(a, "x".repeat(43)));
});

Sess("the cookie is HttpOnly, Secure, SameSite=Strict, __Host-, and expires", () => {
  const c = sessionCookie("tok", 3600);
  for (const p of ["__Host-bollard=tok", "Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=3600"]) assert.ok(c.includes(p), p);
  assert.is(cookieToken(`a=b; ${COOKIE}=tok; c=d`), "tok");
  assert.is(cookieToken("a=b"), null);
  assert.is(cookieToken(undefined), null);
});

Sess.run();

const Users = suite("accounts in the cluster config");

Users("users come from user:<name> flags; malformed ones are named, hashes redacted for display", () => {
  const flags = { "user:alice": `admin ${HASH}`, "user:bob": `viewer ${HASH}`, "user:eve": "root nothash", "maint:node1": "on" };
  const { users: u, bad } = usersOf(flags);
  assert.equal([...u.keys()], ["alice", "bob"]);
  assert.is(u.get("bob")!.role, "viewer");
  assert.equal(bad, ["eve"]);
  const red = redactFlags(flags);
  assert.is(red["user:alice"], "admin (hash hidden)");
  assert.is(red["maint:node1"], "on");
  assert.not.ok(JSON.stringify(red).includes("$scrypt$"));
});

Users("the commands are valid bus commands, and the last admin is noticed", () => {
  assert.ok(Command.safeParse(setUserCommand("alice", "admin", HASH, "root", "added")).success);
  assert.ok(Command.safeParse(removeUserCommand("alice", "root")).success);
  const { users: u } = usersOf({ "user:alice": `admin ${HASH}`, "user:bob": `operator ${HASH}` });
  assert.ok(lastAdmin(u, "alice", null));
  assert.ok(lastAdmin(u, "alice", "viewer"));
  assert.not.ok(lastAdmin(u, "alice", "admin"));
  assert.not.ok(lastAdmin(u, "bob", null));
});

Users("a hash in an event's or a log line's text is hidden (the leader's proposing/commit lines spell flags out)", async () => {
  const h = await hashPassword("some password!", FAST);
  const line = `proposing epoch 6: user viewer added (by root): user:viewer=viewer ${h}, ha=armed`;
  const out = redactText(line);
  assert.not.ok(out.includes(h.split("$").at(-1)!), out);
  assert.is(out, "proposing epoch 6: user viewer added (by root): user:viewer=viewer (hash hidden), ha=armed");
  assert.is(redactText(JSON.stringify({ d: line })), JSON.stringify({ d: out }));
});

Users("roles: admin > operator > viewer", () => {
  assert.ok(allows("admin", "operator"));
  assert.ok(allows("operator", "operator"));
  assert.not.ok(allows("viewer", "operator"));
  assert.not.ok(allows("operator", "admin"));
});

Users.run();
