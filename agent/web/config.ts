// The `web:` section of bollard.yaml (docs/web.md): the web console's listeners, certificate,
// sessions and lockout. Defined beside its module, as runtime/metrics.ts defines `metrics:`.
import { z } from "zod";
import { isHostPort } from "../config/host-port.ts";
import { LOCKOUT, SESSION, type LockoutOptions, type SessionOptions } from "./auth.ts";

const absPath = (what: string) => z.string({ error: `an absolute path (${what})` }).refine((v) => v.startsWith("/") && !v.includes("\0"), { error: `an absolute path (${what})` });
const int = (what: string, min: number, max: number) =>
  z.number({ error: `${what}, ${min} to ${max}` }).int({ error: `${what}, ${min} to ${max}` }).min(min, { error: `${what}, ${min} to ${max}` }).max(max, { error: `${what}, ${min} to ${max}` });

export const WebSection = z
  .object(
    {
      enabled: z.boolean({ error: "true or false" }).default(false),
      /** 0.0.0.0:443 answers on the management address and, on the node holding it, the VIP */
      listen: z
        .array(z.string({ error: "host:port" }).refine(isHostPort, { error: "host:port" }), { error: "a list of host:port" })
        .min(1, { error: "a list of 1 to 4 host:port" })
        .max(4, { error: "a list of 1 to 4 host:port" })
        .default(["0.0.0.0:443"]),
      cert_file: absPath("the web certificate, PEM").optional(),
      key_file: absPath("its private key, PEM").optional(),
      session_hours: int("whole hours", 1, 168).default(SESSION.maxMs / 3600_000),
      idle_minutes: int("whole minutes", 1, 1440).default(SESSION.idleMs / 60_000),
      lockout: z
        .object(
          {
            free: int("failed logins before the first lock", 1, 100).default(LOCKOUT.free),
            base_ms: int("milliseconds", 100, 600_000).default(LOCKOUT.baseMs),
            max_ms: int("milliseconds", 1000, 86_400_000).default(LOCKOUT.maxMs),
          },
          { error: "a mapping (free, base_ms, max_ms)" },
        )
        .strict()
        .prefault({}),
    },
    { error: "a mapping (enabled, listen, cert_file, key_file, session_hours, idle_minutes, lockout)" },
  )
  .strict();
export type WebSection = z.infer<typeof WebSection>;

export interface WebConfig {
  enabled: boolean;
  listen: { host: string; port: number }[];
  /** null: <state_dir>/web/cert.pem and key.pem, a self-signed pair made at the first start */
  certFile: string | null;
  keyFile: string | null;
  session: SessionOptions;
  lockout: LockoutOptions;
}

export function toWebConfig(f: WebSection): WebConfig {
  return {
    enabled: f.enabled,
    listen: f.listen.map((l) => {
      const i = l.lastIndexOf(":");
      return { host: l.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(l.slice(i + 1)) };
    }),
    certFile: f.cert_file ?? null,
    keyFile: f.key_file ?? null,
    session: { maxMs: f.session_hours * 3600_000, idleMs: f.idle_minutes * 60_000 },
    lockout: { ...LOCKOUT, free: f.lockout.free, baseMs: f.lockout.base_ms, maxMs: f.lockout.max_ms },
  };
}

/** Relations the schema cannot say, each a finished `path: ...` line. */
export function checkWeb(f: WebSection): string[] {
  const errs: string[] = [];
  if ((f.cert_file === undefined) !== (f.key_file === undefined)) errs.push("web: expected both cert_file and key_file, or neither (a self-signed pair is made), got one");
  if (f.lockout.max_ms < f.lockout.base_ms) errs.push(`web.lockout.max_ms: expected at least base_ms (${f.lockout.base_ms}), got ${f.lockout.max_ms}`);
  return errs;
}
