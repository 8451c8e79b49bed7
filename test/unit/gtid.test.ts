// GTID parsing and comparison (agent/resources/gtid.ts): the rules that decide failover
// candidates and whether an old primary may rejoin.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  type GtidSet, cmpGtid, compareAdvance, formatGtid, isSubset, missing, mostAdvanced, parseGtid, parseMariadb, parseMysql,
  relation, subsetOf, subtract, union, weight,
} from "../../agent/resources/gtid.ts";

const M = (s: string): GtidSet => {
  const r = parseMariadb(s);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const Y = (s: string): GtidSet => {
  const r = parseMysql(s);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const U2 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

const Parse = suite("gtid: parse");

Parse("MariaDB positions and states", () => {
  assert.equal(M(""), { kind: "mariadb", gtids: [] });
  assert.equal(M("0-1-281"), { kind: "mariadb", gtids: [{ domain: 0, server: 1, seq: 281n }] });
  assert.is(formatGtid(M(" 1-2-5 , 0-1-281")), "0-1-281,1-2-5", "sorted by domain");
  assert.is(formatGtid(M("0-2-10,0-1-281")), "0-1-281,0-2-10", "state: several servers per domain");
  assert.is(formatGtid(M("0-1-18446744073709551615")), "0-1-18446744073709551615", "seq_no is 64-bit");
});

Parse("MariaDB malformed: error values", () => {
  for (const bad of ["0-1", "0-1-", "a-1-2", "0-1-2,", "0-1-2,,1-1-1", "0-1-2;1-1-1", "-1-1-2", "0-1-2-3", "0-4294967296-1", "0-1-18446744073709551616", "0-1-5,0-1-6"]) {
    const r = parseMariadb(bad);
    assert.is(r.ok, false, bad);
    if (!r.ok) assert.ok(r.error.startsWith("MariaDB GTID"), r.error);
  }
  assert.is(parseMariadb(null).ok, false);
  assert.is(parseMariadb(42).ok, false);
  const long = parseMariadb("x".repeat(500));
  assert.ok(!long.ok && long.error.length < 200, "long input is clipped in the message");
});

Parse("MySQL sets: normalized, merged, sorted", () => {
  assert.equal(Y(""), { kind: "mysql", sources: [] });
  assert.is(formatGtid(Y(`${U2}:1-3,\n${U1}:1-5:7`)), `${U1}:1-5:7,${U2}:1-3`);
  assert.is(formatGtid(Y(`${U1}:6-9:1-5:12`)), `${U1}:1-9:12`, "adjacent intervals merge");
  assert.is(formatGtid(Y(`${U1}:1-5,${U1}:3-8`)), `${U1}:1-8`, "repeated uuid merges");
  assert.is(formatGtid(Y(`${U1.toUpperCase()}:1`)), `${U1}:1`, "uuid case folded");
  assert.is(formatGtid(Y(`${U1}:1-3:fleet:1-2`)), `${U1}:1-3,${U1}:fleet:1-2`, "8.3+ tags");
});

Parse("MySQL malformed: error values", () => {
  for (const bad of [`${U1}`, `${U1}:`, `${U1}:0-3`, `${U1}:5-3`, `${U1}:1-x`, "nope:1-3", `${U1}:1-3,`, `${U1}:1--3`, `${U1}:1-3:9Tag:1`]) {
    const r = parseMysql(bad);
    assert.is(r.ok, false, bad);
    if (!r.ok) assert.ok(r.error.startsWith("MySQL GTID set"), r.error);
  }
  assert.is(parseMysql(undefined).ok, false);
  assert.is(parseGtid("mysql", "0-1-2").ok, false);
  assert.is(parseGtid("mariadb", `${U1}:1-3`).ok, false);
});

Parse.run();

const Maria = suite("gtid: MariaDB subset and divergence (per domain and server)");

Maria("a replica behind or equal is a subset", () => {
  assert.ok(isSubset(M("0-1-100"), M("0-1-281")));
  assert.ok(isSubset(M("0-1-281"), M("0-1-281")));
  assert.ok(isSubset(M(""), M("0-1-281")));
  assert.is(missing(M("0-1-100"), M("0-1-281")), "");
});

Maria("old primary rejoining after promotion: subset of the new primary's binlog state", () => {
  // node1 wrote up to 281, node2 was promoted at 281 and wrote 282..300 as server 2
  assert.ok(isSubset(M("0-1-281"), M("0-1-281,0-2-300")));
});

Maria("old primary with unreplicated writes: diverged, extras named", () => {
  const old = M("0-1-285"), now = M("0-1-281,0-2-300");
  assert.not.ok(isSubset(old, now));
  assert.is(missing(old, now), "0-1-282..0-1-285");
  assert.is(missing(M("0-1-282"), now), "0-1-282");
});

Maria("same seq_no written by two servers is a divergence, not a match", () => {
  // isolated old primary wrote 0-1-282 while the new primary wrote 0-2-282
  assert.is(missing(M("0-1-282"), M("0-1-281,0-2-282")), "0-1-282");
});

Maria("a server the other never saw: everything from it counts (conservative)", () => {
  assert.is(missing(M("0-1-281,0-3-5"), M("0-1-281,0-2-300")), "0-3-1..0-3-5");
  assert.is(missing(M("1-1-3"), M("0-1-281")), "1-1-1..1-1-3", "another domain");
  // b given as a position (one GTID per domain) is not enough to prove a subset
  assert.not.ok(isSubset(M("0-1-281"), M("0-2-300")));
});

Maria("several offenders listed in order", () => {
  assert.is(missing(M("0-1-285,1-1-9,2-1-1"), M("0-1-281,1-1-9")), "0-1-282..0-1-285,2-1-1");
});

Maria("string helper returns error values", () => {
  assert.equal(subsetOf("mariadb", "0-1-285", "0-1-281"), { ok: true, value: { subset: false, extra: "0-1-282..0-1-285" } });
  assert.equal(subsetOf("mariadb", "0-1-5", "0-1-5"), { ok: true, value: { subset: true, extra: "" } });
  assert.is(subsetOf("mariadb", "garbage", "0-1-5").ok, false);
  assert.is(subsetOf("mariadb", "0-1-5", "garbage").ok, false);
});

Maria.run();

const Adv = suite("gtid: most advanced (candidate order)");

Adv("MariaDB: per domain seq_no", () => {
  assert.is(relation(M("0-1-281"), M("0-1-279")), "ahead");
  assert.is(relation(M("0-1-279"), M("0-1-281")), "behind");
  assert.is(relation(M("0-1-281"), M("0-1-281")), "equal");
  assert.is(relation(M("0-2-300"), M("0-1-281")), "ahead", "a position after a failover: same domain, higher seq");
  assert.is(relation(M("0-1-5,1-1-3"), M("0-1-6,1-1-2")), "diverged");
  assert.is(relation(M("0-1-5,1-1-3"), M("0-1-5")), "ahead");
  assert.is(weight(M("0-1-5,0-2-7,1-1-3")), 10n);
});

Adv("MySQL: superset, then transaction count", () => {
  assert.is(relation(Y(`${U1}:1-10`), Y(`${U1}:1-9`)), "ahead");
  assert.is(relation(Y(`${U1}:1-9`), Y(`${U1}:1-10`)), "behind");
  assert.is(relation(Y(`${U1}:1-9`), Y(`${U1}:1-9`)), "equal");
  assert.is(relation(Y(`${U1}:1-9,${U2}:1`), Y(`${U1}:1-10`)), "diverged");
  assert.is(compareAdvance(Y(`${U1}:1-9,${U2}:1-3`), Y(`${U1}:1-10`)), 1, "12 transactions beat 10");
  assert.is(weight(Y(`${U1}:1-5:7,${U2}:1-3`)), 9n);
});

Adv("mostAdvanced: index of the best, first on ties, -1 for none", () => {
  assert.is(mostAdvanced([M("0-1-279"), M("0-1-281"), M("0-1-280")]), 1);
  assert.is(mostAdvanced([M("0-1-281"), M("0-1-281")]), 0);
  assert.is(mostAdvanced([]), -1);
  assert.is(mostAdvanced([Y(`${U1}:1-3`), Y(`${U1}:1-5`)]), 1);
});

Adv("cmpGtid: the HA manager's comparator, null when diverged or malformed", () => {
  assert.is(cmpGtid("mariadb", "0-1-281", "0-1-279"), 1);
  assert.is(cmpGtid("mariadb", "0-1-279", "0-1-281"), -1);
  assert.is(cmpGtid("mariadb", "0-1-281", "0-1-281"), 0);
  assert.is(cmpGtid("mariadb", "0-1-5,1-1-3", "0-1-6,1-1-2"), null);
  assert.is(cmpGtid("mariadb", "junk", "0-1-1"), null);
  assert.is(cmpGtid("mysql", `${U1}:1-10`, `${U1}:1-9`), 1);
  assert.is(cmpGtid("mysql", `${U1}:1-9,${U2}:1`, `${U1}:1-10`), null);
});

Adv("union: received folded with executed", () => {
  assert.is(formatGtid(union(M("0-1-220"), M("0-1-218"))), "0-1-220");
  assert.is(formatGtid(union(M("0-1-220"), M("0-2-5,1-1-3"))), "0-1-220,0-2-5,1-1-3");
  assert.is(formatGtid(union(M(""), M("0-1-7"))), "0-1-7");
  assert.is(formatGtid(union(Y(`${U1}:1-5`), Y(`${U1}:4-9,${U2}:2`))), `${U1}:1-9,${U2}:2`);
});

Adv.run();

const My = suite("gtid: MySQL subset and difference");

My("subset and missing", () => {
  assert.ok(isSubset(Y(`${U1}:1-5`), Y(`${U1}:1-9,${U2}:1-3`)));
  assert.ok(isSubset(Y(""), Y(`${U1}:1-9`)));
  assert.is(missing(Y(`${U1}:1-9`), Y(`${U1}:1-5`)), `${U1}:6-9`);
  assert.is(missing(Y(`${U1}:1-9:12-14,${U2}:1-3`), Y(`${U1}:3-5:13`)), `${U1}:1-2:6-9:12:14,${U2}:1-3`);
  assert.is(missing(Y(`${U1}:1-3:fleet:1-2`), Y(`${U1}:1-3`)), `${U1}:fleet:1-2`);
  assert.is(formatGtid(subtract(Y(`${U1}:1-5`) as never, Y(`${U1}:1-5`) as never)), "");
});

My("kinds never mix", () => {
  assert.not.ok(isSubset(M("0-1-1"), Y(`${U1}:1`)));
  assert.match(missing(M("0-1-1"), Y(`${U1}:1`)), "compared with a mysql one");
  assert.is(subsetOf("mysql", `${U1}:1-5`, `${U1}:1-4`).ok, true);
});

My.run();
