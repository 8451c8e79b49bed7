// The `backup:` section (issue 23, docs/backup.md): where backups go, how often, how long kept.
//   backup:
//     target: /srv/backup/{node}     # each node's backup directory, the same path on every node
//                                    # ({node} is replaced; another node's is reached through an
//                                    # NFS mount of it; the lab's: /run/bollard-lab/{node}/backup)
//     retention: {daily: 7, weekly: 4}
//     mysql_every_s: 86400           # base backups; 0: only on demand (`bollard backup now mysql`)
//     mysql_incrementals: 6          # incremental base backups between two full ones (0: all full)
//     redis_every_s: 86400
//     verify_every_s: 86400          # restore the latest backup of each kind into a scratch instance
//     archive: true                  # the continuous binlog archive
//     full_ratio: 0.85               # a target fuller than this: alarm (before it stops anything)
//     scratch_host: 127.0.0.1        # where restores and verifications start their servers
//     restore_mysql_port: 3316, restore_redis_port: 6390, verify_mysql_port: 3317, verify_redis_port: 6391
import { z } from "zod";

const section = <T extends z.core.$ZodLooseShape>(shape: T, what: string) => z.object(shape, { error: `a mapping (${what})` }).strict();
const count = (d: number, max: number) => z.number({ error: `a whole number 0-${max}` }).int().min(0).max(max).default(d);
const secs = (d: number) => z.number({ error: "a whole number of seconds >= 0 (0: off)" }).int().min(0).max(31_536_000).default(d);
const port = (d: number) => z.number({ error: "a port, 1-65535" }).int().min(1).max(65535).default(d);

export const BackupSection = section(
  {
    target: z.string({ error: "an absolute path, with {node} for the node's own directory" }).refine((v) => v.startsWith("/") && v.includes("{node}") && !v.includes("\0"), "an absolute path containing {node}"),
    retention: section({ daily: count(7, 366), weekly: count(4, 520) }, "daily, weekly").prefault({}),
    mysql_every_s: secs(86_400),
    mysql_incrementals: count(6, 100),
    redis_every_s: secs(86_400),
    verify_every_s: secs(86_400),
    archive: z.boolean({ error: "true or false" }).default(true),
    full_ratio: z.number({ error: "a ratio 0.1-1" }).min(0.1).max(1).default(0.85),
    scratch_host: z.string({ error: "an IPv4 address" }).regex(/^(\d{1,3}\.){3}\d{1,3}$/).default("127.0.0.1"),
    restore_mysql_port: port(3316),
    restore_redis_port: port(6390),
    verify_mysql_port: port(3317),
    verify_redis_port: port(6391),
  },
  "target, retention, mysql_every_s, mysql_incrementals, redis_every_s, verify_every_s, archive, full_ratio, scratch_host, restore_*_port, verify_*_port",
);

export interface BackupConfig {
  /** with {node} */
  target: string;
  retention: { daily: number; weekly: number };
  mysqlEveryS: number;
  /** incremental base backups between two full ones */
  mysqlIncrementals: number;
  redisEveryS: number;
  verifyEveryS: number;
  archive: boolean;
  fullRatio: number;
  scratchHost: string;
  ports: { restoreMysql: number; restoreRedis: number; verifyMysql: number; verifyRedis: number };
}

export function toBackupConfig(f: z.infer<typeof BackupSection>): BackupConfig {
  return {
    target: f.target, retention: f.retention, mysqlEveryS: f.mysql_every_s, mysqlIncrementals: f.mysql_incrementals, redisEveryS: f.redis_every_s, verifyEveryS: f.verify_every_s,
    archive: f.archive, fullRatio: f.full_ratio, scratchHost: f.scratch_host,
    ports: { restoreMysql: f.restore_mysql_port, restoreRedis: f.restore_redis_port, verifyMysql: f.verify_mysql_port, verifyRedis: f.verify_redis_port },
  };
}

/** A node's backup directory. */
export const targetOf = (c: BackupConfig, node: string): string => c.target.replaceAll("{node}", node);
