// make bench-peers's figures (test/lab/peers/stats.ts): percentiles, a run that never came
// back, and the summary line the issue asks for.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type PeerResult, pct, ratio, summarize, summaryLine, table } from "../lab/peers/stats.ts";

const Stats = suite("peers: statistics");

Stats("nearest-rank percentiles, unsorted input, NaN left out", () => {
  assert.is(pct([3, 1, 2], 50), 2);
  assert.is(pct([1, 2, 3, 4], 50), 2);
  assert.is(pct([5, NaN, 1], 99), 5);
  assert.ok(Number.isNaN(pct([], 50)));
  assert.ok(Number.isNaN(pct([NaN], 50)));
});

Stats("a run that never came back is not fast: out of the percentiles, ok < runs", () => {
  const s = summarize([{ run: 1, seconds: 2, lost: 0 }, { run: 2, seconds: NaN, lost: null }, { run: 3, seconds: 4, lost: 3 }]);
  assert.equal([s.ok, s.p50, s.min, s.max, s.lost], [2, 2, 2, 4, 3]);
  assert.is(summarize([{ run: 1, seconds: 1, lost: null }]).lost, null, "nothing checked: no count");
});

Stats("ratio: bollard over the peer", () => {
  assert.is(ratio(1, 4), 0.25);
  assert.ok(Number.isNaN(ratio(1, NaN)));
  assert.ok(Number.isNaN(ratio(1, 0)));
});

Stats.run();

const Line = suite("peers: the summary line and the table");

const r = (key: string, secs: number[], lost: number | null): PeerResult => ({ key, what: key, runs: secs.map((s, i) => ({ run: i + 1, seconds: s, lost })) });

Line("every figure and ratio in the issue's order; a peer that did not run is n/a", () => {
  const line = summaryLine([
    r("bollard_mysql", [2.3, 2.2, 2.4], 0), r("bollard_redis", [1.8], 0), r("bollard_vip", [2.1], null),
    r("mha", [10, 12, 11], 1), r("sentinel", [3.6], 2), r("keepalived_vip", [3.5], null),
    { key: "pacemaker", what: "x", runs: [], skipped: "no fencing" },
  ]);
  assert.is(line, "peers: bollard_mysql_p50=2.30 bollard_redis_p50=1.80 bollard_vip_p50=2.10 mha_p50=11.00 pacemaker_p50=n/a sentinel_p50=3.60 keepalived_vip_p50=3.50 ratio_mha=0.21 ratio_pacemaker=n/a ratio_sentinel=0.50 lost_acked=bollard:0,mha:3,pacemaker:-,sentinel:2,keepalived:-");
});

Line("the table says why a peer did not run", () => {
  const t = table([{ key: "pacemaker", what: "MariaDB through IPaddr2", runs: [], skipped: "corosync did not form" }]);
  assert.match(t[1]!, /pacemaker .* did not run: corosync did not form/);
});

Line.run();
