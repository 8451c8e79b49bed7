// The pure half of the Redis driver: parsing INFO replication (texts captured from
// redis-server 7.0.15) and turning it into the RedisStatus the HA manager reads.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FENCE_MIN_REPLICAS, parseReplicationInfo, statusFromInfo, type ReplicationInfo } from "../../agent/resources/redis.ts";

const TAIL = `master_failover_state:no-failover
master_replid:8aee55fda491a41b08257362bf522681952b475d
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:50
second_repl_offset:-1
repl_backlog_active:1
repl_backlog_size:1048576
repl_backlog_first_byte_offset:1
repl_backlog_histlen:50
`;

const MASTER = `# Replication\r
role:master\r
connected_slaves:2\r
min_slaves_good_slaves:1\r
slave0:ip=127.0.3.2,port=6379,state=online,offset=50,lag=0\r
slave1:ip=127.0.3.3,port=6379,state=wait_bgsave,offset=0,lag=4\r
${TAIL.replaceAll("\n", "\r\n")}`;

const REPLICA_UP = `# Replication
role:slave
master_host:127.0.3.1
master_port:6379
master_link_status:up
master_last_io_seconds_ago:0
master_sync_in_progress:0
slave_read_repl_offset:50
slave_repl_offset:50
slave_priority:100
slave_read_only:1
replica_announced:1
connected_slaves:0
${TAIL}`;

const REPLICA_DOWN = REPLICA_UP.replace("master_link_status:up", "master_link_status:down")
  .replace("master_last_io_seconds_ago:0", "master_last_io_seconds_ago:-1\nmaster_link_down_since_seconds:3");

const PROMOTED = `# Replication
role:master
connected_slaves:0
master_failover_state:no-failover
master_replid:31275203e75c98c17035a55eb6fce36ae88e6798
master_replid2:8aee55fda491a41b08257362bf522681952b475d
master_repl_offset:50
second_repl_offset:51
`;

function parsed(text: string): ReplicationInfo {
  const p = parseReplicationInfo(text);
  if (!p.ok) throw new Error(`expected a parse, got: ${p.error}`);
  return p.info;
}

const Parse = suite("parseReplicationInfo");

Parse("a master with two replicas (CRLF lines)", () => {
  const i = parsed(MASTER);
  assert.is(i.role, "master");
  assert.is(i.offset, 50);
  assert.is(i.connectedReplicas, 2);
  assert.is(i.goodReplicas, 1);
  assert.equal(i.replicas, [
    { ip: "127.0.3.2", port: 6379, state: "online", offset: 50, lag: 0 },
    { ip: "127.0.3.3", port: 6379, state: "wait_bgsave", offset: 0, lag: 4 },
  ]);
  assert.is(i.masterHost, null);
  assert.is(i.secondReplOffset, -1);
});

Parse("a replica with its link up", () => {
  const i = parsed(REPLICA_UP);
  assert.is(i.role, "replica");
  assert.is(i.masterHost, "127.0.3.1");
  assert.is(i.masterPort, 6379);
  assert.is(i.linkUp, true);
  assert.is(i.lastIoSeconds, 0);
  assert.is(i.offset, 50);
  assert.is(i.replicaReadOnly, true);
  assert.is(i.goodReplicas, null);
});

Parse("a replica whose master is gone: -1 seconds is unknown", () => {
  const i = parsed(REPLICA_DOWN);
  assert.is(i.linkUp, false);
  assert.is(i.lastIoSeconds, null);
});

Parse("a promoted replica keeps the old history up to second_repl_offset - 1", () => {
  const i = parsed(PROMOTED);
  assert.is(i.role, "master");
  assert.is(i.secondReplOffset, 51);
  assert.is(i.replid2, "8aee55fda491a41b08257362bf522681952b475d");
});

Parse("garbage gives an error value that says what was wrong", () => {
  const cases: [unknown, RegExp][] = [
    [undefined, /expected text, got undefined/],
    [null, /expected text, got null/],
    [42, /expected text, got number/],
    ["", /role: expected "master" or "slave", got nothing/],
    ["<html>502 Bad Gateway</html>", /line 1: expected "field:value"/],
    ["role:sentinel\n", /role: expected "master" or "slave", got "sentinel"/],
    ["role:master\nconnected_slaves:0\n", /master_repl_offset: missing/],
    ["role:master\nconnected_slaves:x\nmaster_repl_offset:1\n", /connected_slaves: expected an integer, got "x"/],
    ["role:master\nconnected_slaves:1\nmaster_repl_offset:1\nslave0:ip=1.2.3.4,port=p\n", /slave0: port: expected an integer, got "p"/],
    ["role:master\nconnected_slaves:1\nmaster_repl_offset:99999999999999999999\n", /master_repl_offset: expected an integer/],
    [REPLICA_UP.replace("master_link_status:up", "master_link_status:maybe"), /master_link_status: expected "up" or "down", got "maybe"/],
    [REPLICA_UP.replace("master_host:127.0.3.1\n", ""), /master_host: expected a host, got nothing/],
    [REPLICA_UP.replace("slave_repl_offset:50\n", ""), /slave_repl_offset: missing/],
  ];
  for (const [input, want] of cases) {
    const p = parseReplicationInfo(input);
    assert.is(p.ok, false, `accepted ${JSON.stringify(input)?.slice(0, 40)}`);
    if (!p.ok) assert.match(p.error, want);
    if (!p.ok) assert.match(p.error, /^INFO replication/);
  }
});

Parse.run();

const Status = suite("statusFromInfo");
const GATE = { minReplicasToWrite: 1, minReplicasMaxLag: 2 };

Status("a master meeting its gate takes writes", () => {
  assert.equal(statusFromInfo(parsed(MASTER), GATE), {
    up: true, role: "master", offset: 50, source: null, linkUp: false, lastIoSeconds: null, connectedReplicas: 2, writesRefused: false,
  });
});

Status("a master below its gate refuses writes", () => {
  assert.is(statusFromInfo(parsed(MASTER), { ...GATE, minReplicasToWrite: 2 }).writesRefused, true);
  assert.is(statusFromInfo(parsed(PROMOTED), GATE).writesRefused, true);
});

Status("without min_slaves_good_slaves, good replicas are online ones within max-lag", () => {
  const i = { ...parsed(MASTER), goodReplicas: null };
  assert.is(statusFromInfo(i, { ...GATE, minReplicasToWrite: 1 }).writesRefused, false);
  assert.is(statusFromInfo(i, { ...GATE, minReplicasToWrite: 2, minReplicasMaxLag: 10 }).writesRefused, true, "wait_bgsave is not good");
});

Status("the gate is off when either setting is 0 (server.c checkGoodReplicasStatus)", () => {
  assert.is(statusFromInfo(parsed(PROMOTED), { minReplicasToWrite: 0, minReplicasMaxLag: 2 }).writesRefused, false);
  assert.is(statusFromInfo(parsed(PROMOTED), { minReplicasToWrite: 1, minReplicasMaxLag: 0 }).writesRefused, false);
});

Status("a fenced master refuses writes with all replicas good", () => {
  assert.is(statusFromInfo(parsed(MASTER), { ...GATE, minReplicasToWrite: FENCE_MIN_REPLICAS }).writesRefused, true);
});

Status("a replica: source, link, last I/O; read-only refuses writes", () => {
  const s = statusFromInfo(parsed(REPLICA_UP), GATE);
  assert.equal(s, { up: true, role: "replica", offset: 50, source: "127.0.3.1:6379", linkUp: true, lastIoSeconds: 0, connectedReplicas: 0, writesRefused: true });
  assert.is(statusFromInfo(parsed(REPLICA_UP.replace("slave_read_only:1", "slave_read_only:0")), GATE).writesRefused, false);
  assert.is(statusFromInfo(parsed(REPLICA_DOWN), GATE).linkUp, false);
});

Status.run();
