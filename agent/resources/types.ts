// What the HA manager needs from each resource driver (DESIGN §1, §5). Drivers do I/O; the
// deciding code in ha/ only sees these shapes. A driver method that fails throws a
// DriverError whose message says what was tried, against what, and what came back.

export class DriverError extends Error {
  constructor(
    readonly driver: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`${driver}: ${message}`);
  }
}

export type Role = "primary" | "replica" | "none";

export interface MysqlStatus {
  up: boolean;
  /** read_only (and super_read_only where it exists) */
  readOnly: boolean;
  role: Role;
  /** GTID set/position executed (MariaDB gtid_current_pos / MySQL gtid_executed) */
  gtidExecuted: string;
  /** replica only: where it replicates from, host:port */
  source: string | null;
  ioRunning: boolean;
  sqlRunning: boolean;
  /** Seconds_Behind_Master / Seconds_Behind_Source; null when unknown */
  lagSeconds: number | null;
  lastError: string | null;
  semiSyncSource: boolean;
  semiSyncReplica: boolean;
}

export interface RedisStatus {
  up: boolean;
  role: "master" | "replica" | "none";
  /** master_repl_offset (master) or slave_repl_offset (replica) */
  offset: number;
  source: string | null;
  linkUp: boolean;
  /** seconds since the last interaction with the master (replica only) */
  lastIoSeconds: number | null;
  connectedReplicas: number;
  /** true when a write would be refused (replica, or min-replicas not met / fenced) */
  writesRefused: boolean;
}

/** One proof step of a fence attempt: what was done and what confirmed it (DESIGN §5). */
export interface FenceProof {
  level: "ipmi" | "switch-ports" | "deadline";
  ok: boolean;
  /** e.g. "chassis power off; power status: off", "ifAdminStatus down read back on switchA port 3" */
  detail: string;
  ms: number;
}
