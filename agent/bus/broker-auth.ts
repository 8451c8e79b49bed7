// The agent owns its local Mosquitto's authentication (issue 3 "the brokers' ACLs follow"):
// it writes the password file and the ACL from the committed cluster config, and asks the
// broker to reload them with SIGHUP (mosquitto(8): "SIGHUP ... reload ... password_file,
// acl_file"). Connections already open stay open.
import { readFileSync } from "node:fs";
import type { ClusterConfig } from "./messages.ts";
import type { Logger } from "../env/env.ts";
import type { BrokerFiles } from "../config/schema.ts";
import { atomicWrite } from "../env/store.ts";
import { JOIN_PASSWORD, JOIN_USER, derivedPassword, mosquittoHash } from "./credentials.ts";

/** One `user:hash` line per member, plus the joiners' shared login. */
export function renderPasswd(cfg: ClusterConfig, cluster: string, token: Buffer | null): string {
  const lines: string[] = [];
  for (const m of cfg.members) {
    if (m.pass) lines.push(`${m.name}:${m.pass}`);
    else if (token) lines.push(`${m.name}:${mosquittoHash(derivedPassword(token, cluster, m.name), `${cluster}/${m.name}`)}`);
  }
  lines.push(`${JOIN_USER}:${mosquittoHash(JOIN_PASSWORD, `${cluster}/${JOIN_USER}`)}`);
  return lines.join("\n") + "\n";
}

/**
 * Each member writes only its own prefix and reads everything of the cluster; the joiners'
 * login writes only bollard/v1/<c>/join/... and reads only the leaders' answers to joiners.
 * `pattern` lines apply to every user, `%u` being the login (mosquitto.conf(5) acl_file).
 */
export function renderAcl(cfg: ClusterConfig, cluster: string): string {
  const root = `bollard/v1/${cluster}`;
  const out = ["# written by bollard from the committed cluster config; do not edit", `pattern write ${root}/%u/#`, ""];
  for (const m of cfg.members) out.push(`user ${m.name}`, `topic read ${root}/#`, "");
  out.push(`user ${JOIN_USER}`, `topic read ${root}/+/join/#`, "");
  return out.join("\n");
}

export class BrokerAuth {
  private last = "";

  constructor(
    private readonly files: BrokerFiles,
    private readonly cluster: string,
    private readonly token: Buffer | null,
    private readonly log: Logger,
  ) {}

  /** Writes the files if `cfg` changes them and reloads the broker; true if it did. */
  apply(cfg: ClusterConfig): boolean {
    const passwd = renderPasswd(cfg, this.cluster, this.token);
    const acl = renderAcl(cfg, this.cluster);
    if (passwd + acl === this.last) return false;
    let same = false;
    try {
      same = readFileSync(this.files.passwordFile, "utf8") === passwd && readFileSync(this.files.aclFile, "utf8") === acl;
    } catch { /* not written yet */ }
    this.last = passwd + acl;
    if (same) return false;
    atomicWrite(this.files.passwordFile, passwd, { durable: true, mode: 0o600 });
    atomicWrite(this.files.aclFile, acl, { durable: true, mode: 0o644 });
    const pid = this.brokerPid();
    if (pid) {
      try {
        process.kill(pid, "SIGHUP");
      } catch (e) {
        this.log.warn(`could not ask the broker (pid ${pid}) to reload its users: ${(e as Error).message}`);
        return true;
      }
    }
    this.log.info(`broker users and ACL written for ${cfg.members.map((m) => m.name).join(", ")} (epoch ${cfg.epoch})${pid ? `; broker ${pid} reloaded` : "; broker not running"}`);
    return true;
  }

  private brokerPid(): number | null {
    try {
      const pid = Number(readFileSync(this.files.pidFile, "utf8").trim());
      return Number.isInteger(pid) && pid > 1 ? pid : null;
    } catch {
      return null;
    }
  }
}
