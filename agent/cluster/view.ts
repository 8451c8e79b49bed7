// What the cluster core shows of itself: status, console, metrics and the sim read this.
import type { ClusterConfig } from "../bus/messages.ts";

export type Role = "follower" | "candidate" | "leader";

export interface PeerView {
  name: string;
  alive: boolean;
  /** ms since its last heartbeat, null if never heard */
  lastHeardMs: number | null;
  term: number;
  role: Role;
  leader: string | null;
  /** its wall clock minus ours, from its last heartbeat (ms); skew alarms read this */
  skewMs: number | null;
}

export interface NodeView {
  node: string;
  role: Role;
  term: number;
  leader: string | null;
  /** this node sees a majority of the configured members, itself included */
  quorum: boolean;
  /** leader only: its lease is valid now */
  lease: boolean;
  /** the node may act on drivers: leader with lease and own-term commit, or follower with quorum */
  acting: boolean;
  /** its committed config is the cluster's latest (acting leader, or follower holding the live leader's commit) */
  current: boolean;
  tilt: boolean;
  /** quorum lost for longer than quorum_loss: everything held is demoted (DESIGN R6) */
  selfFenced: boolean;
  member: boolean;
  config: ClusterConfig;
  committed: ClusterConfig;
  peers: PeerView[];
  counters: Record<string, number>;
}
