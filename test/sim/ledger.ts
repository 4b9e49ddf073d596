// What the simulation checks. Every message the application hands to a core
// gets a unique id (carried in its header) and a record here; deliveries,
// outcomes and receipts are written against it, and check() turns what is
// left into violations at the end of a scenario.
//
// Violations are counted in four kinds (the sim's summary line):
//   lost        a message neither delivered nor covered by a typed outcome
//               (session lost, rejected or destroyed); a corrupted payload; a receipt
//               for a message the peer never got, or a missing receipt
//   duplicated  a handler ran twice for one id; a second outcome for one
//               request (a response after a cancel or timeout included)
//   out of order  a session delivered its messages out of send order
//   stuck       requests still pending, the sim or a core not idle at the
//               end, event overflow, protocol errors, traps, livelock guards

export type Kind = 'lost' | 'duplicated' | 'order' | 'stuck';
export const kinds: readonly Kind[] = ['lost', 'duplicated', 'order', 'stuck'];

export type Outcome = 'response' | 'timeout' | 'aborted' | 'lost' | 'rejected' | 'closed' | 'destroyed';

/** One client session incarnation (a client opens a new one after a loss). */
export class Inc {
  session = 0;
  state: 'connecting' | 'open' | 'ended' = 'connecting';
  end: Outcome | undefined;
  /** The code of the event that ended it (SESSION_LOST's reason, ...). */
  endCode = 0;
  /** Next send-order number in this incarnation. */
  order = 0;
  backpressured = false;
  closeCalled = false;
  readonly byTag = new Map<number, Msg>();
  readonly bySeq = new Map<number, Msg>();
  readonly msgs: Msg[] = [];
  constructor(readonly client: number, readonly n: number) {}
}

export interface Msg {
  id: number;
  client: number;
  inc: Inc;
  order: number;
  kind: 'req' | 'ow';
  seq: number;
  tag: number;
  receipt: boolean;
  ext: boolean;
  dataLen: number;
  sentAt: number;
  timeoutMs: number;
  delivered: number;
  /** Server lane handle that delivered it first (for targeted tests). */
  deliveredLane: number;
  outcome: Outcome | undefined;
  receipts: number;
  /** The responder saw its CANCEL. */
  serverCancelled: boolean;
}

export class Ledger {
  readonly msgs = new Map<number, Msg>();
  readonly counts: Record<Kind, number> = { lost: 0, duplicated: 0, order: 0, stuck: 0 };
  readonly details: string[] = [];
  #lastOrder = new Map<string, number>();
  #nextId = 1;

  newId(): number {
    return this.#nextId++;
  }

  report(kind: Kind, what: string): void {
    this.counts[kind]++;
    if (this.details.length < 50) this.details.push(`${kind}: ${what}`);
  }

  get violations(): number {
    return this.counts.lost + this.counts.duplicated + this.counts.order + this.counts.stuck;
  }

  sent(m: Msg): void {
    this.msgs.set(m.id, m);
    m.inc.msgs.push(m);
  }

  /** The receiving application got message id; returns its record if it is one we sent. */
  delivered(id: number, client: number, inc: number, order: number, kind: 'req' | 'ow', lane: number, now: number): Msg | undefined {
    const m = this.msgs.get(id);
    if (!m || m.client !== client || m.inc.n !== inc || m.order !== order || m.kind !== kind) {
      this.report('lost', `delivered a message that was never sent as such: id ${id} client ${client} inc ${inc} order ${order} ${kind}`);
      return undefined;
    }
    m.delivered++;
    if (m.delivered > 1) {
      this.report('duplicated', `id ${id} (${kind}, client ${client} inc ${inc} order ${order}) delivered ${m.delivered} times, last at ${now}us`);
      return m;
    }
    m.deliveredLane = lane;
    const key = `${client}/${inc}`;
    const last = this.#lastOrder.get(key) ?? -1;
    if (order !== last + 1) {
      this.report('order', `client ${client} inc ${inc}: delivered order ${order} (id ${id}) after order ${last}, at ${now}us`);
    }
    if (order > last) this.#lastOrder.set(key, order);
    return m;
  }

  /** The request got its outcome; a second one is a violation. */
  outcome(m: Msg, o: Outcome, now: number): void {
    if (m.outcome !== undefined) {
      this.report('duplicated', `request id ${m.id} got ${o} at ${now}us after ${m.outcome}`);
      return;
    }
    m.outcome = o;
    m.inc.byTag.delete(m.tag);
  }

  /** End-of-scenario checks over every message sent. */
  check(): void {
    for (const m of this.msgs.values()) {
      // A destroyed session is the application's own abrupt end: covered too.
      const covered = m.inc.end === 'lost' || m.inc.end === 'rejected' || m.inc.end === 'destroyed';
      if (m.kind === 'req' && m.outcome === undefined) {
        this.report('stuck', `request id ${m.id} (client ${m.client} inc ${m.inc.n}) has no outcome`);
      }
      if (m.delivered === 0 && !covered) {
        this.report('lost', `${m.kind} id ${m.id} (client ${m.client} inc ${m.inc.n} order ${m.order}) never delivered; session ${m.inc.end ?? m.inc.state}`);
      }
      if (m.receipt && m.receipts === 0 && m.inc.end === 'closed') {
        this.report('lost', `${m.kind} id ${m.id} (client ${m.client} inc ${m.inc.n}) asked for a receipt and got none before a clean close`);
      }
    }
  }
}

// Message bodies: a window into one fixed pseudo-random buffer, chosen by
// the id, so corruption and mix-ups are caught without keeping copies, and
// neither making nor checking a body costs a loop in JS.

const BODY_SPAN = 1 << 17;
const bodies = (() => {
  const b = Buffer.allocUnsafe(BODY_SPAN + 128 * 1024);
  let x = 0x2545f491;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
})();

/** The body of message id: len bytes (len <= 128 KiB). A view: do not write to it. */
export function pattern(id: number, len: number): Buffer {
  const at = Math.imul(id, 0x9e3779b1) >>> 15;
  return bodies.subarray(at, at + len);
}

export function patternOk(id: number, b: Uint8Array): boolean {
  return pattern(id, b.length).equals(b);
}
