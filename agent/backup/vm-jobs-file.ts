// Where each node's VM backup job results live: <vms.backup.dir>/vm-jobs-<node>.json (JobResult,
// as the MySQL/Redis jobs.json). Written by runtime/vm-backup-jobs.ts, read by it, by
// backup/vm-status.ts and by `bollard backup status`.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { JobResult } from "./schedule.ts";

export const jobsFile = (dir: string, node: string): string => join(dir, `vm-jobs-${node}.json`);

/** A node's VM backup job results (absent or unreadable: none). */
export async function readVmJobs(dir: string, node: string): Promise<JobResult[]> {
  try {
    const j = JSON.parse(await readFile(jobsFile(dir, node), "utf8"));
    return Array.isArray(j) ? (j as JobResult[]).filter((x) => x && typeof x.kind === "string" && typeof x.at === "string") : [];
  } catch {
    return [];
  }
}
