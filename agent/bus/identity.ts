// Which bus password this node logs in with, settled at start-up (issue 3 "Auto-join"):
//   1. an explicit bus.password / bus.password_file;
//   2. the password a previous join gave it (<state_dir>/bus.password);
//   3. with no persisted state: join the cluster through its peers; if no leader answers and
//      this node is a founder (in cluster.members), it forms the cluster with the password
//      derived from the join token;
//   4. a founder with persisted state: the derived password.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import type { Logger, Store } from "../env/env.ts";
import { atomicWrite } from "../env/store.ts";
import { derivedPassword } from "./credentials.ts";
import { joinCluster } from "./join-client.ts";

export interface BusIdentity {
  password: string;
  /** forming a new cluster as a founder: its broker must know the founders now */
  forming: boolean;
  /** started blank and joined a running cluster: no vote before a later term (ClusterNode) */
  cautiousVotes: boolean;
  how: string;
}

export const JOINED_PASSWORD_FILE = "bus.password";
const REFUSED_BACKOFF_MS = 10_000;

export async function resolveBusIdentity(c: Config, store: Store, log: Logger, signal: AbortSignal): Promise<BusIdentity> {
  if (c.bus.password) return { password: c.bus.password, cautiousVotes: false, forming: false, how: "configured" };
  const j = c.cluster.join;
  if (!j || !j.token) throw new Error("no bus password: set bus.password or bus.password_file, or cluster.join with a token_file");
  const file = join(c.stateDir, JOINED_PASSWORD_FILE);
  const founder = c.cluster.members.some((m) => m.name === c.cluster.node);
  const hasState = store.load() !== null;
  if (existsSync(file) && hasState) return { password: readFileSync(file, "utf8").trim(), cautiousVotes: false, forming: false, how: `from an earlier join (${file})` };
  if (hasState && founder) return { password: derivedPassword(j.token, c.cluster.name, c.cluster.node), cautiousVotes: false, forming: false, how: "founder, derived from the join token" };

  const r = await joinCluster({
    cluster: c.cluster.name, node: c.cluster.node, address: j.address!, peers: j.peers, token: j.token, log, timeoutMs: j.timeoutMs,
    tls: c.bus.tls?.material ?? null,
  });
  if (signal.aborted) throw new Error("start-up aborted during join");
  if (r.ok) {
    atomicWrite(file, r.password + "\n", { durable: true, mode: 0o600 });
    log.info(`joined cluster ${c.cluster.name}: admitted by ${r.leader} at config epoch ${r.epoch ?? "?"}; bus credentials saved in ${file}`);
    return { password: r.password, cautiousVotes: true, forming: false, how: `joined through ${r.leader}` };
  }
  if ("noAnswer" in r && founder) {
    log.info(`${r.reason}; forming cluster ${c.cluster.name} as a founder with ${c.cluster.members.map((m) => m.name).join(", ")}`);
    return { password: derivedPassword(j.token, c.cluster.name, c.cluster.node), cautiousVotes: false, forming: true, how: "founder, forming the cluster" };
  }
  log.error(`join refused: ${r.reason}`);
  // Do not hammer the leader: the service manager restarts us; wait before giving up.
  await new Promise((res) => setTimeout(res, REFUSED_BACKOFF_MS));
  throw new Error(`could not join cluster ${c.cluster.name}: ${r.reason}`);
}
