// The joiner's MQTT side of auto-join (issue 3). With only its seed, a node logs in to every
// peer broker as the shared "join" user, says hello until a leader challenges it, answers
// with its HMAC proof, and waits for the leader's answer, which it verifies with its token.
// The decisions are cluster/joiner.ts's; this file only moves messages.
import { randomBytes } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import { Joiner, type JoinOutcome } from "../cluster/joiner.ts";
import type { Logger } from "../env/env.ts";
import { decode, encode } from "./codec.ts";
import { JOIN_PASSWORD, JOIN_USER, mosquittoHash, newPassword } from "./credentials.ts";
import { brokerUrl } from "./mqtt.ts";
import { clientTls, isTlsFault, type TlsMaterial } from "./tls.ts";
import { buildTopic, clusterRoot, parseTopic } from "./topics.ts";

export interface JoinOptions {
  cluster: string;
  node: string;
  /** this node's own broker, host:port, as the members will reach it */
  address: string;
  peers: string[];
  token: Buffer;
  log: Logger;
  timeoutMs: number;
  helloEveryMs?: number;
  /** TLS: the seed's certificate gets the joiner onto the peers' brokers (require_certificate);
   *  a peer's broker must show a certificate of the cluster CA for its address */
  tls?: TlsMaterial | null;
}

export type JoinAttempt =
  | (JoinOutcome & { ok: true; password: string })
  | (JoinOutcome & { ok: false })
  | { ok: false; leader: null; reason: string; noAnswer: true };

export function joinCluster(o: JoinOptions): Promise<JoinAttempt> {
  const log = o.log.child("join");
  const password = newPassword();
  const joiner = new Joiner(o.cluster, o.node, o.address, mosquittoHash(password), o.token, randomBytes(16).toString("hex"));
  const clients: MqttClient[] = [];
  const answerFilter = `${clusterRoot(o.cluster)}/+/join/${o.node}`;
  const helloTopic = buildTopic({ cluster: o.cluster, node: o.node, kind: "join-req", step: "hello" });
  const proofTopic = buildTopic({ cluster: o.cluster, node: o.node, kind: "join-req", step: "proof" });

  return new Promise<JoinAttempt>((resolve) => {
    let done = false;
    let proof: Buffer | null = null;
    const finish = (r: JoinAttempt) => {
      if (done) return;
      done = true;
      clearInterval(again);
      clearTimeout(deadline);
      for (const c of clients) c.end(true);
      resolve(r);
    };
    const publishAll = (topic: string, payload: Buffer) => {
      for (const c of clients) if (c.connected) c.publish(topic, payload, { qos: 1 });
    };
    for (const peer of o.peers) {
      const url = brokerUrl(peer, !!o.tls);
      if (!url) { log.error(`peer ${JSON.stringify(peer)} is not host:port; skipped`); continue; }
      const c = mqtt.connect(url, { ...(o.tls ? clientTls(o.tls, null) : {}), username: JOIN_USER, password: JOIN_PASSWORD, protocolVersion: 5, reconnectPeriod: 1000, connectTimeout: 2000, clean: true, writeCache: false });
      clients.push(c);
      c.on("connect", () => {
        c.subscribe(answerFilter, { qos: 1 }, () => c.publish(proof ? proofTopic : helloTopic, proof ?? encode(joiner.hello()), { qos: 1 }));
      });
      let said = "";
      c.on("error", (e: Error & { code?: unknown }) => {
        // a certificate that does not verify, ours or the peer's: another cluster's CA, an
        // expired one, the peer's address missing from its certificate. Said once per peer.
        const tls = isTlsFault(e.code);
        if (tls && e.message !== said) log.warn(`peer ${peer}: TLS: ${e.message}`);
        else log.debug(`peer ${peer}: ${e.message}`);
        if (tls) said = e.message;
      });
      c.on("message", (topic, payload) => {
        const t = parseTopic(topic);
        if (!t || t.kind !== "join" || t.to !== o.node) return;
        const d = decode(payload);
        if (!d.ok) return log.warn(`ignored an answer on ${topic}: ${d.error}`);
        if (d.msg.t === "join-challenge") {
          const p = joiner.onChallenge(t.node, d.msg);
          if (!p) return;
          if (!proof) log.info(`challenged by ${t.node}; sending the proof`);
          proof = encode(p);
          publishAll(proofTopic, proof);
        } else if (d.msg.t === "join-result") {
          const out = joiner.onResult(t.node, d.msg);
          if (!out) return;
          if (out.ok) finish({ ...out, password });
          else finish(out);
        }
      });
    }
    const again = setInterval(() => publishAll(proof ? proofTopic : helloTopic, proof ?? encode(joiner.hello())), o.helloEveryMs ?? 1000);
    const deadline = setTimeout(() => {
      const why = joiner.challenged ? `${joiner.challenged} challenged us but did not answer the proof` : "no leader answered";
      finish({ ok: false, leader: null, reason: `${why} within ${o.timeoutMs} ms (peers ${o.peers.join(", ")})`, noAnswer: true });
    }, o.timeoutMs);
    log.info(`joining cluster ${o.cluster} as ${o.node} through ${o.peers.join(", ")}`);
  });
}
