// The topic map (DESIGN §3). Every topic is `bollard/v1/<cluster>/<node>/<kind>[/<arg>]`,
// where <node> is the *sending* node: the broker ACL lets node X's credentials write only
// `bollard/v1/<cluster>/X/#`, so the node segment is the sender's identity.
// MQTT 5 topic names must not contain the wildcards `+` `#` [MQTT-4.7.0-1] nor U+0000
// [MQTT-4.7.3-2], and are at least one character long [MQTT-4.7.3-1]; the name rules
// below admit none of those characters, so a built topic is always a valid topic name.
import { Member } from "./messages.ts";

export const TOPIC_ROOT = "bollard/v1";

export type TopicKind = "hb" | "state" | "config" | "ready" | "rpc" | "alarm" | "event" | "metrics" | "join" | "join-req";
/** Kinds that take no argument segment. */
const PLAIN: ReadonlySet<string> = new Set(["hb", "state", "config", "ready", "event", "metrics"]);

export interface Topic {
  cluster: string;
  /** the sending node (its prefix) */
  node: string;
  kind: TopicKind;
  /** kind "rpc": the addressed node */
  to?: string;
  /** kind "alarm": the alarm id */
  id?: string;
  /** kind "join-req": the joiner's step (hello, proof); `node` is then the joiner */
  step?: "hello" | "proof";
}

/** The segment joiners publish under: bollard/v1/<c>/join/<joiner>/<step> (user "join"). */
export const JOIN_SEGMENT = "join";

/** Alarm ids: one topic level of letters, digits and `._:-`, 1-128 characters. */
const ALARM_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A node name exactly as the message contract defines it (messages.ts `Member.name`). */
export function isNodeName(s: unknown): s is string {
  return Member.shape.name.safeParse(s).success;
}

/** Cluster names follow the node-name rule (as config/schema.ts's NAME_RE does). */
export function isClusterName(s: unknown): s is string {
  return isNodeName(s);
}

export function isAlarmId(s: unknown): s is string {
  return typeof s === "string" && ALARM_ID.test(s);
}

/** `bollard/v1/<cluster>`: the root every topic of one cluster lives under. */
export function clusterRoot(cluster: string): string {
  if (!isClusterName(cluster)) throw new TypeError(`cluster: expected a cluster name (a-z, 0-9, -), got ${JSON.stringify(cluster)}`);
  return `${TOPIC_ROOT}/${cluster}`;
}

/** `bollard/v1/<cluster>/<node>`: the one prefix node `node` may write under. */
export function nodePrefix(cluster: string, node: string): string {
  if (!isNodeName(node)) throw new TypeError(`node: expected a node name (a-z, 0-9, -), got ${JSON.stringify(node)}`);
  return `${clusterRoot(cluster)}/${node}`;
}

/**
 * The topic for `t`. Throws a TypeError naming the bad part when a name is invalid: every
 * name here comes from validated config, so a bad one is a bug, not an outside input.
 */
export function buildTopic(t: Topic): string {
  const p = nodePrefix(t.cluster, t.node);
  switch (t.kind) {
    case "rpc":
      if (!isNodeName(t.to)) throw new TypeError(`to: expected a node name (a-z, 0-9, -), got ${JSON.stringify(t.to)}`);
      return `${p}/rpc/${t.to}`;
    case "join":
      // the leader's answer to joiner `to`, under the leader's own prefix
      if (!isNodeName(t.to)) throw new TypeError(`to: expected a node name (a-z, 0-9, -), got ${JSON.stringify(t.to)}`);
      return `${p}/join/${t.to}`;
    case "join-req":
      if (t.step !== "hello" && t.step !== "proof") throw new TypeError(`step: expected hello or proof, got ${JSON.stringify(t.step)}`);
      return `${clusterRoot(t.cluster)}/${JOIN_SEGMENT}/${t.node}/${t.step}`;
    case "alarm":
      if (!isAlarmId(t.id)) throw new TypeError(`id: expected an alarm id ([A-Za-z0-9._:-], 1-128), got ${JSON.stringify(t.id)}`);
      return `${p}/alarm/${t.id}`;
    default:
      if (!PLAIN.has(t.kind)) throw new TypeError(`kind: expected one of hb state config ready rpc alarm event metrics, got ${JSON.stringify(t.kind)}`);
      return `${p}/${t.kind}`;
  }
}

/** Parses a topic name; null for anything that is not exactly one of the topics above. */
export function parseTopic(topic: string): Topic | null {
  if (typeof topic !== "string" || topic.length > 512) return null;
  const parts = topic.split("/");
  if (parts.length < 5 || parts.length > 6) return null;
  const [root, version, cluster, node, kind, arg] = parts as [string, string, string, string, string, string?];
  if (`${root}/${version}` !== TOPIC_ROOT || !isClusterName(cluster)) return null;
  if (node === JOIN_SEGMENT) {
    return isNodeName(kind) && (arg === "hello" || arg === "proof") ? { cluster, node: kind, kind: "join-req", step: arg } : null;
  }
  if (!isNodeName(node)) return null;
  if (arg === undefined) {
    return PLAIN.has(kind) ? { cluster, node, kind: kind as TopicKind } : null;
  }
  if (kind === "rpc" && isNodeName(arg)) return { cluster, node, kind, to: arg };
  if (kind === "alarm" && isAlarmId(arg)) return { cluster, node, kind, id: arg };
  if (kind === "join" && isNodeName(arg)) return { cluster, node, kind, to: arg };
  return null;
}

/**
 * What node `node` subscribes to on every member's broker. `+` is the single-level wildcard
 * (MQTT5 §4.7.1.2); the arriving topic's node segment is then checked against the broker
 * the message came from (mqtt.ts), so these filters may match more than is accepted.
 */
export function subscriptionsFor(cluster: string, node: string): { topic: string; qos: 0 | 1 }[] {
  const root = clusterRoot(cluster);
  nodePrefix(cluster, node); // validates node
  return [
    { topic: `${root}/+/hb`, qos: 0 },
    { topic: `${root}/+/rpc/${node}`, qos: 1 },
    { topic: `${root}/+/state`, qos: 1 },
    { topic: `${root}/+/config`, qos: 1 },
    { topic: `${root}/+/ready`, qos: 1 },
    { topic: `${root}/+/alarm/+`, qos: 1 },
    { topic: `${root}/${JOIN_SEGMENT}/+/+`, qos: 1 },
  ];
}
