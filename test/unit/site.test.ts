// The remote site's decisions (agent/ha/site.ts): lag in transactions, when the remote is
// re-pointed, when it is held, what a promote says it would lose.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseConfig } from "../../agent/config/load.ts";
import { judgeSite, lagTransactions, remoteExtra, promotePlan, promotedSites, type RemoteFacts, type SiteInput } from "../../agent/ha/site.ts";

const facts = (o: Partial<RemoteFacts> = {}): RemoteFacts => ({
  up: true, readOnly: true, source: "198.18.0.11:3306", ioRunning: true, sqlRunning: true, lagSeconds: 0, lastError: null,
  executed: "0-1-100", received: "0-1-100", promoted: null, seen: null, ...o,
});
const input = (o: Partial<SiteInput> = {}): SiteInput => ({
  site: "site2", kind: "mariadb", facts: facts(), flags: {}, holder: "node1", holderAddr: "198.18.0.11:3306", holderWritable: true,
  primaryGtid: "0-1-100", lagAlarmS: 30, lagAlarmTrx: 1000, ...o,
});

const Lag = suite("site: lag in transactions");
Lag("MariaDB: by domain heads, across a change of primary", () => {
  assert.equal(lagTransactions("mariadb", "0-1-100", "0-1-100"), { count: 0, text: "" });
  assert.equal(lagTransactions("mariadb", "0-1-500,0-2-510", "0-1-490"), { count: 20, text: "domain 0: 491..510" });
  assert.equal(lagTransactions("mariadb", "0-1-5", ""), { count: 5, text: "domain 0: 1..5" });
  assert.equal(lagTransactions("mariadb", "0-1-5,1-1-3", "0-1-4"), { count: 4, text: "domain 0: 5, domain 1: 1..3" });
});
Lag("MariaDB: a remote ahead of the primary's (reported) position lags 0; unreadable text is null, not a crash", () => {
  assert.equal(lagTransactions("mariadb", "0-1-100", "0-1-103"), { count: 0, text: "" });
  assert.is(lagTransactions("mariadb", "garbage", "0-1-1"), null);
});
Lag("MySQL: set difference", () => {
  const U = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
  assert.equal(lagTransactions("mysql", `${U}:1-10`, `${U}:1-7`), { count: 3, text: `${U}:8-10` });
  assert.equal(lagTransactions("mysql", `${U}:1-10`, `${U}:1-11`), { count: 0, text: "" });
});
Lag("what the remote has that a new primary lacks: by the binlog state, every server's last GTID", () => {
  assert.is(remoteExtra("mariadb", "0-1-100", "0-1-100,0-2-105"), null, "all of server 1's up to 100, then the new primary's");
  assert.is(remoteExtra("mariadb", "0-1-101", "0-1-100,0-2-105"), "0-1-101", "an old primary's tail, even below the new primary's seq_no");
  assert.is(remoteExtra("mariadb", "0-1-100", "0-1-99"), "0-1-100");
});
Lag.run();

const Judge = suite("site: judgement");
Judge("in step with the primary: replicating, a record of the primary's position, no alarm", () => {
  const j = judgeSite(input(), true);
  assert.is(j.state, "replicating");
  assert.equal(j.actions, [{ do: "record", gtid: "0-1-100", holder: "node1" }]);
  assert.equal(j.alarms, []);
  assert.is(j.hold, null);
});
Judge("after a failover the remote still points at the old primary: re-pointed to the holder", () => {
  const j = judgeSite(input({ holder: "node2", holderAddr: "198.18.0.12:3306", primaryGtid: "0-1-100,0-2-103" }), true);
  assert.is(j.state, "broken");
  assert.equal(j.actions[0], { do: "repoint", to: "198.18.0.12:3306", why: "replicates from 198.18.0.11:3306, the primary is node2 (198.18.0.12:3306)" });
  assert.is(j.lagTrx, 3);
  assert.is(j.alarms[0].rule, "site-lag");
});
Judge("a follower judges but never acts nor alarms", () => {
  const j = judgeSite(input({ holder: "node2", holderAddr: "198.18.0.12:3306" }), false);
  assert.is(j.state, "broken");
  assert.equal(j.actions, []);
  assert.equal(j.alarms, []);
});
Judge("a stopped applier is re-pointed (restarted), with its error said", () => {
  const j = judgeSite(input({ facts: facts({ sqlRunning: false, lastError: "Duplicate entry" }) }), true);
  assert.is(j.actions[0].do, "repoint");
  assert.match(j.why, /applier stopped: Duplicate entry/);
});
Judge("lag over the threshold in seconds or in transactions: the site-lag alarm", () => {
  assert.is(judgeSite(input({ facts: facts({ lagSeconds: 29 }) }), true).state, "replicating");
  const s = judgeSite(input({ facts: facts({ lagSeconds: 30 }) }), true);
  assert.is(s.state, "lagging");
  assert.match(s.alarms[0].detail, /30 s and 0 transactions behind/);
  const t = judgeSite(input({ primaryGtid: "0-1-1100" }), true);
  assert.is(t.state, "lagging");
  assert.is(t.lagTrx, 1000);
});
Judge("no writable primary: wait, do not re-point to it", () => {
  const j = judgeSite(input({ holder: "node2", holderAddr: "198.18.0.12:3306", holderWritable: false }), true);
  assert.is(j.state, "waiting");
  assert.ok(!j.actions.some((a) => a.do === "repoint"));
});
Judge("the remote has what the new primary lacks: diverged, not re-pointed, critical", () => {
  const j = judgeSite(input({ holder: "node2", holderAddr: "198.18.0.12:3306", primaryGtid: "0-1-99,0-2-100", facts: facts({ executed: "0-1-100" }) }), true);
  assert.is(j.state, "diverged");
  assert.equal(j.actions, []);
  assert.is(j.alarms[0].severity, "critical");
});
Judge("replicating from the holder and ahead of its last report: not diverged, 0 behind", () => {
  const j = judgeSite(input({ primaryGtid: "0-1-100", facts: facts({ executed: "0-1-104" }) }), true);
  assert.is(j.state, "replicating");
  assert.is(j.lagTrx, 0);
});
Judge("unreachable: a major alarm, no action, nothing held", () => {
  const j = judgeSite(input({ facts: { ...facts(), up: false, error: "connect ETIMEDOUT" } }), true);
  assert.is(j.state, "unreachable");
  assert.is(j.alarms[0].rule, "site-down");
  assert.is(j.hold, null);
});
Judge("the remote was promoted: flagged once, held, critical alarm, never re-pointed", () => {
  const p = facts({ source: null, readOnly: false, promoted: { at: 1_700_000_000_000, by: "site2", lost: "3 transactions" } });
  const j = judgeSite(input({ facts: p }), true);
  assert.is(j.state, "promoted");
  assert.equal(j.actions.map((a) => a.do), ["flag-promoted"]);
  assert.ok(j.hold);
  assert.is(j.alarms[0].rule, "site-promoted");
  const again = judgeSite(input({ facts: p, flags: { "site-promoted:site2": "x" } }), true);
  assert.equal(again.actions, [], "flagged already");
  // writable and replicating from nothing counts too (promoted by hand)
  assert.is(judgeSite(input({ facts: facts({ source: null, readOnly: false }) }), true).state, "promoted");
});
Judge("once flagged, the flag holds even when the remote is back to a replica", () => {
  const j = judgeSite(input({ flags: { "site-promoted:site2": "at T" }, holder: "node2", holderAddr: "198.18.0.12:3306" }), true);
  assert.is(j.state, "waiting");
  assert.ok(j.hold);
  assert.ok(!j.actions.some((a) => a.do === "repoint"));
  assert.equal(promotedSites({ "site-promoted:site2": "x", "maint:node1": "on" }), ["site2"]);
});
Judge.run();

const Plan = suite("site: what a promote would lose");
Plan("known: the primary's last recorded position against what the remote received", () => {
  const p = promotePlan("mariadb", facts({ executed: "0-1-90", received: "0-1-95", seen: { gtid: "0-1-100", at: 1_000_000, holder: "node1" } }), 1_010_000);
  assert.is(p.lostTrx, 5);
  assert.ok(p.lines.some((l) => /lacks 5 transactions \(domain 0: 96..100\)/.test(l)), p.lines.join("\n"));
  assert.ok(p.lines.some((l) => /10 s ago/.test(l)));
  assert.match(p.lost, /plus what was committed after/);
});
Plan("never recorded: unknown, said so", () => {
  const p = promotePlan("mariadb", facts(), 0);
  assert.is(p.lostTrx, null);
  assert.ok(p.lines.some((l) => /UNKNOWN/.test(l)));
});
Plan("in step: no transaction known lost", () => {
  const p = promotePlan("mariadb", facts({ seen: { gtid: "0-1-100", at: 0, holder: "node1" } }), 0);
  assert.is(p.lostTrx, 0);
});
Plan.run();

const Cfg = suite("site: the sites: section");
const BASE = `
cluster:
  name: port-fms
  node: node1
  members:
    - { name: node1, address: "198.18.1.1:1883" }
bus:
  password: s3cret
ha:
  nodes:
    node1: { address: 198.18.0.11 }
mysql:
  user: bollard
  password_file: /etc/bollard/mysql.pass
  repl_password_file: /etc/bollard/repl.pass
`;
Cfg("defaults; a site without mysql, duplicate names and bad values are errors that name the path", () => {
  const r = parseConfig(`${BASE}sites:\n  - name: site2\n    mysql: { host: 198.19.2.10 }\n`, "t.yaml");
  assert.ok(r.ok, r.ok ? "" : r.errors.join("\n"));
  if (r.ok) assert.equal(r.config.sites, [{ name: "site2", host: "198.19.2.10", port: 3306, user: null, passwordFile: null, lagAlarmS: 30, lagAlarmTrx: 10_000, contactWaitMs: 5000, pollMs: 1000 }]);
  const noMysql = parseConfig(`${BASE.replace(/mysql:[\s\S]*$/, "")}sites:\n  - name: site2\n    mysql: { host: 198.19.2.10 }\n`, "t.yaml");
  assert.ok(!noMysql.ok && noMysql.errors.some((e) => /^sites: expected a mysql section/.test(e)), JSON.stringify(noMysql));
  const dup = parseConfig(`${BASE}sites:\n  - { name: a, mysql: { host: 1.2.3.4 } }\n  - { name: a, mysql: { host: 1.2.3.5 } }\n`, "t.yaml");
  assert.ok(!dup.ok && dup.errors.some((e) => /unique names/.test(e)));
  const bad = parseConfig(`${BASE}sites:\n  - { name: site2, mysql: { host: nowhere }, lag_alarm_s: 0, extra: 1 }\n`, "t.yaml");
  assert.ok(!bad.ok);
  if (!bad.ok) {
    assert.ok(bad.errors.some((e) => e.startsWith("sites[0].mysql.host")), bad.errors.join("\n"));
    assert.ok(bad.errors.some((e) => e.startsWith("sites[0].lag_alarm_s")), bad.errors.join("\n"));
  }
});
Cfg.run();
