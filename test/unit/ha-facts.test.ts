// The HA runtime's facts as the alarms see them: a MySQL replica's lag reaches the repl-lag
// rule (it never fired: the facts carried no lag), and what peers get stays within the
// report's strict schema.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import { DbReport } from "../../agent/bus/messages.ts";
import { dbReport, mysqlFacts } from "../../agent/runtime/ha-runtime.ts";
import { mysqlInput } from "../../agent/runtime/watch-inputs.ts";
import type { MysqlDriverStatus } from "../../agent/resources/mysql.ts";

const F = suite("HA facts for the alarms");

const replica = (o: Partial<MysqlDriverStatus> = {}): MysqlDriverStatus => ({
  up: true, readOnly: true, role: "replica", gtidExecuted: "0-1-10", source: "198.18.0.11:3306", ioRunning: true, sqlRunning: true,
  lagSeconds: 0, lastError: null, semiSyncSource: false, semiSyncReplica: true, gtidReceived: "0-1-12", recvMark: "bin.000001:100/3", receiverOn: true, incarnation: "t.1", ...o,
});
const nodeOf = (hp: string | null) => (hp?.startsWith("198.18.0.11") ? "node1" : null);
const alarms = (m: MysqlDriverStatus) => evaluate({ node: "node2", mysql: mysqlInput(mysqlFacts(m, "0-1-10", nodeOf))! }, defaultAlarmsConfig().rules)
  .conditions.map((c) => `${c.severity} ${c.id}: ${c.detail ?? ""}`);

F("a lagging replica raises repl-lag with its Seconds_Behind_Master", () => {
  const cfg = defaultAlarmsConfig().rules;
  const f = mysqlFacts(replica({ lagSeconds: cfg.replication.lagCritS + 5 }), "0-1-10", nodeOf);
  assert.equal(f.repl, { ioRunning: true, sqlRunning: true, lagSeconds: cfg.replication.lagCritS + 5, lastError: null });
  assert.equal(alarms(replica({ lagSeconds: cfg.replication.lagCritS + 5 })), [`major repl-lag:node2:mysql: ${cfg.replication.lagCritS + 5} s behind its source`]);
  assert.equal(alarms(replica({ lagSeconds: 0 })), []);
});

F("a stopped SQL thread is replica-broken with the server's error, not an unknown lag", () => {
  assert.equal(alarms(replica({ sqlRunning: false, lagSeconds: null, lastError: "Error 1062: Duplicate entry" })),
    ["major replica-broken:node2:mysql: SQL thread stopped; Error 1062: Duplicate entry"]);
});

F("a primary has no replication facts, and reports leave them out (strict schema)", () => {
  const p = mysqlFacts(replica({ role: "primary", readOnly: false, source: null, ioRunning: false, sqlRunning: false, lagSeconds: null, gtidReceived: null }), "0-1-10", nodeOf);
  assert.is(p.repl, undefined);
  const r = mysqlFacts(replica(), "0-1-10", nodeOf);
  assert.ok(DbReport.safeParse(dbReport(r, null, { promote: 3 })).success, "a replica's report parses");
  assert.not.ok(DbReport.safeParse({ ...r, heldOut: null }).success, "the facts themselves would be refused by peers");
});

F.run();
