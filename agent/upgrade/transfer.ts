// A bundle from one node to another over the bus (docs/upgrade.md): the node to upgrade asks
// the node that offers it for one piece at a time (`bundle-get`), each answered with up to
// PIECE bytes in base64 (`bundle-part`, under the bus's 64 KiB payload limit). The whole is
// checked against its sha256 before it is staged. No broker or HTTP port of its own: the
// bus is the only path between the nodes the appliance needs.
import { randomBytes } from "node:crypto";
import type { BundleGet, BundlePart, Message } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import { sha256 } from "./bundle.ts";

/** bytes per piece: 40 KiB is 54.6 KB of base64, under MAX_PAYLOAD with the envelope */
export const PIECE = 40 * 1024;
const PIECE_TIMEOUT_MS = 5000;
const TRIES = 3;

/** What a node offers: sha -> the bytes (an operator's file, or the bundle this agent runs). */
export type Offers = (sha: string) => Buffer | null;

export class BundleTransfer {
  private readonly waiting = new Map<string, (m: BundlePart) => void>();
  /** pieces served and fetched, and pieces that failed (for the upgrade status) */
  readonly counters = { served: 0, fetched: 0, failed: 0 };

  constructor(
    private readonly send: (to: string, msg: Message) => void,
    private readonly offers: Offers,
  ) {}

  receive(from: string, msg: Message): void {
    if (msg.t === "bundle-part") {
      this.waiting.get(msg.id)?.(msg);
      this.waiting.delete(msg.id);
      return;
    }
    if (msg.t === "bundle-get") this.serve(from, msg);
  }

  private serve(from: string, m: BundleGet): void {
    const data = this.offers(m.sha);
    const part: BundlePart = { v: PROTOCOL_VERSION, t: "bundle-part", id: m.id, sha: m.sha, offset: m.offset, total: data?.length ?? 0, data: "" };
    if (!data) part.error = `bundle ${m.sha.slice(0, 12)} is not offered here`;
    else if (m.offset > data.length) part.error = `offset ${m.offset} is past the end (${data.length} bytes)`;
    else part.data = data.subarray(m.offset, m.offset + PIECE).toString("base64");
    this.counters.served++;
    this.send(from, part);
  }

  /** The whole bundle `sha` from node `from`, piece by piece; rejects with the reason. */
  async fetch(from: string, sha: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    let offset = 0;
    let total = -1;
    while (total < 0 || offset < total) {
      const p = await this.piece(from, sha, offset);
      if (p.error) throw new Error(`${from}: ${p.error}`);
      const b = Buffer.from(p.data, "base64");
      if (p.offset !== offset || (b.length === 0 && offset < p.total)) throw new Error(`${from} sent a piece out of order (offset ${p.offset}, length ${b.length}, wanted ${offset})`);
      total = p.total;
      if (total === 0) throw new Error(`${from} offers an empty bundle`);
      parts.push(b);
      offset += b.length;
    }
    const all = Buffer.concat(parts);
    if (sha256(all) !== sha) throw new Error(`the bundle from ${from} does not match its sha256 ${sha.slice(0, 12)} (${all.length} bytes)`);
    return all;
  }

  private async piece(from: string, sha: string, offset: number): Promise<BundlePart> {
    let last = "";
    for (let i = 0; i < TRIES; i++) {
      try {
        const p = await this.ask(from, sha, offset);
        this.counters.fetched++;
        return p;
      } catch (e) {
        this.counters.failed++;
        last = (e as Error).message;
      }
    }
    throw new Error(`${last} (${TRIES} tries)`);
  }

  private ask(from: string, sha: string, offset: number): Promise<BundlePart> {
    const id = randomBytes(8).toString("hex");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${from} did not send the piece at ${offset} within ${PIECE_TIMEOUT_MS} ms`));
      }, PIECE_TIMEOUT_MS);
      this.waiting.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.send(from, { v: PROTOCOL_VERSION, t: "bundle-get", id, sha, offset });
    });
  }
}
