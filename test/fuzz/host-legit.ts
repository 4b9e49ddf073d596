// The legitimate session of the host fuzzer: a real client (connect() on a
// Context of its own) that keeps requests and one-way messages going to the
// server under attack, with a ledger on both sides. Every request must be
// answered exactly once with its own bytes, every message delivered once and
// in order, no error may surface, and the session must still be open at the
// end; anything else is a disturbance.

import { connect, Context, Session } from '../../host/index';
import { Rng } from './rng';

/** What the server's side saw of one legitimate session. */
export interface ServerLedger {
  /** Message numbers in the order onMessage got them. */
  messages: number[];
  /** Executions of each request number (must be exactly 1). */
  requests: Map<number, number>;
}

export function newLedger(): ServerLedger {
  return { messages: [], requests: new Map() };
}

const enc = (kind: 'q' | 'm', n: number): Buffer => Buffer.from(`${kind}:${n}`);

/** Reads a legitimate header ('q:12', 'm:3'): the number, or -1. */
export function legitNumber(h: Buffer, kind: 'q' | 'm'): number {
  if (h.length < 3 || h[0] !== kind.charCodeAt(0) || h[1] !== 0x3a) return -1;
  const n = Number(h.subarray(2).toString());
  return Number.isInteger(n) && n >= 0 ? n : -1;
}

export class Legit {
  session: Session | undefined;
  readonly problems: string[] = [];
  requests = 0;
  answered = 0;
  messages = 0;
  laneDowns = 0;
  #r: Rng;
  #running = false;
  #loops: Promise<void>[] = [];
  #closing = false;

  constructor(readonly portal: string, readonly ctx: Context, seed: number, readonly maxData: number, readonly ledger: ServerLedger,
    readonly psk?: { identity: string; key: Buffer }) {
    this.#r = new Rng(seed, 0x1e9);
  }

  /** Opens the session (lanes: 2); false (and a problem) if it does not open in time. */
  async open(timeoutMs: number): Promise<boolean> {
    try {
      const s = await connect(this.portal, { context: this.ctx, lanes: 2, timeout: timeoutMs, attrs: Buffer.from('legit'), psk: this.psk });
      this.session = s;
      s.on('error', (e: Error) => { if (!this.#closing) this.problems.push(`session error: ${e.message}`); });
      s.on('close', (e?: Error) => { if (!this.#closing) this.problems.push(`session ended${e ? `: ${e.message}` : ''}`); });
      s.on('protocol-error', (e: Error) => this.problems.push(`protocol error on a lane of the session: ${e.message}`));
      s.on('lane-down', () => { this.laneDowns++; });
      return true;
    } catch (e) {
      this.problems.push(`could not open: ${(e as Error).message}`);
      return false;
    }
  }

  /** Keeps `depth` requests in flight, each followed now and then by one-way messages. */
  start(depth: number): void {
    if (!this.session) return;
    this.#running = true;
    for (let i = 0; i < depth; i++) this.#loops.push(this.#loop());
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  #size(): number {
    const r = this.#r;
    const x = r.int(100);
    return x < 70 ? r.int(513) : x < 92 ? r.range(513, 8000) : r.range(8193, Math.max(8193, this.maxData));
  }

  async #loop(): Promise<void> {
    const s = this.session!;
    while (this.#running && s.state !== 'closed') {
      await this.#request();
      if (this.#r.chance(0.5)) await this.#message();
    }
  }

  async #request(): Promise<boolean> {
    const s = this.session!;
    const n = this.requests++;
    const data = this.#r.bytes(this.#size());
    const header = enc('q', n);
    try {
      const reply = await s.request(header, data, { timeout: 20000 });
      if (!reply.header.equals(header) || !reply.data.equals(data)) {
        this.problems.push(`request ${n}: wrong reply (header ${reply.header.length} bytes, data ${reply.data.length} of ${data.length})`);
        return false;
      }
      this.answered++;
      return true;
    } catch (e) {
      this.problems.push(`request ${n} failed: ${(e as Error).message}`);
      return false;
    }
  }

  async #message(): Promise<void> {
    const s = this.session!;
    const n = this.messages++;
    try {
      await s.send(enc('m', n), this.#r.bytes(this.#size()));
    } catch (e) {
      this.problems.push(`message ${n} not sent: ${(e as Error).message}`);
    }
  }

  /**
   * After stop(): one more round trip (so every message sent before it has
   * been delivered), then the ledgers compared. Adds a problem for anything
   * lost, duplicated or out of order, or a session that is not open.
   */
  async verify(): Promise<void> {
    const s = this.session;
    if (!s) return;
    if (s.state !== 'open') this.problems.push(`session ${s.state} at the end, not open`);
    else await this.#request();
    const l = this.ledger;
    const m = l.messages;
    if (m.length !== this.messages || m.some((x, i) => x !== i)) {
      const dup = m.length - new Set(m).size;
      this.problems.push(`server got ${m.length} of ${this.messages} messages (${dup} duplicates, ${m.some((x, i) => x !== i) ? 'out of order' : 'in order'})`);
    }
    for (const [n, k] of l.requests) if (k !== 1) this.problems.push(`request ${n} executed ${k} times`);
    if (l.requests.size !== this.requests) this.problems.push(`server executed ${l.requests.size} of ${this.requests} requests`);
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.session?.close({ timeout: 2000 }).catch(() => undefined);
  }
}
