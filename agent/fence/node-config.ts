// How to fence one node, from the ha: section (config/ha-schema.ts): its BMC and its ports on
// the switches, in the shape fence.ts takes. The VMs' fencer (runtime/vm-leader.ts) reads it.
import type { HaFile } from "../config/ha-schema.ts";
import type { NodeFenceConfig } from "./fence.ts";

export function nodeFenceConfig(ha: HaFile, node: string): NodeFenceConfig {
  const n = ha.nodes[node];
  const b = n?.bmc;
  const bmc = b ? { host: b.host, port: b.port, user: b.user, passwordFile: b.password_file, cipher: b.cipher, timeoutS: b.timeout_s, retries: b.retries } : undefined;
  const switchPorts = (n?.ports ?? []).map(({ switch: name, port }) => {
    const s = ha.switches[name]!;
    const v3 = s.v3 && { user: s.v3.user, authKey: s.v3.auth_key, privKey: s.v3.priv_key, authProtocol: s.v3.auth_protocol, privProtocol: s.v3.priv_protocol };
    return { port, switch: { name, host: s.host, port: s.port, version: s.version, community: s.community, writeCommunity: s.write_community, timeoutMs: s.timeout_ms, v3: v3 || undefined } };
  });
  return { bmc, switchPorts };
}

/**
 * Why `node` cannot be fenced with this config, or null. Without a BMC or switch ports a node
 * is still fenced by the self-fence deadline (fence.ts level 3); without ha: there are no fence
 * timings, and no data-path manager to clear the fence flags of a node that comes back.
 */
export function cannotFence(ha: HaFile | null, node: string): string | null {
  if (!ha) return "the config has no ha: section (fencing and its timings)";
  return ha.nodes[node] ? null : `ha.nodes has no ${node}`;
}
