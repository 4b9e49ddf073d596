// What the simulation checks. Every message the application hands to a
// session gets a unique id (carried in its header) and a record here; the
// moment the core takes it (seen through the context's recorder) gives its
// place in the session's order; deliveries, outcomes and receipts are
// written against it, and check() turns what is left into violations at the
// end of a scenario. Every promise and callback the application starts
// (request, send, close, destroy, connect, Context.close, tryRequest's
// callback) is an Op here that must settle exactly once.
//
// Violations are counted in six kinds (the sim's summary line):
//   lost        a message neither delivered nor covered by its session's
//               end (lost, rejected, destroyed, closed by the peer or with
//               its context); a corrupted payload; a receipt for a message
//               the peer never got, or a missing receipt
//   duplicated  a handler ran twice for one id; a session ended twice
//   out of order  a session delivered its messages out of the order the
//               core took them
//   stuck       a session not ended at the end, the network or the clock
//               not idle, a protocol error (no peer here is hostile), a
//               core trap, an exception thrown by the host, a graceful
//               close that ran into its bound, a livelock guard
//   unsettled   a promise or callback the application started that never
//               settled, or settled twice
//   leaked      a context that still holds anything (Context.usage()) or
//               has a timer armed once every session on it ended

import type { Session } from '../../host/session';
import type { Context } from '../../host/context';

export type HotCallback = (err: Error | null, header: Buffer, data: Buffer, tag: number) => void;

export type Kind = 'lost' | 'duplicated' | 'order' | 'stuck' | 'unsettled' | 'leaked';
export const kinds: readonly Kind[] = ['lost', 'duplicated', 'order', 'stuck', 'unsettled', 'leaked'];

/** How a session incarnation ended. */
export type End = 'lost' | 'rejected' | 'closed' | 'peer-closed' | 'destroyed' | 'ctx-closed' | 'gone';
/** A request's outcome: a response, its own failure, or its session's end ('refused': never taken by the core). */
export type Outcome = 'response' | 'timeout' | 'aborted' | 'refused' | End;

/** Ends that excuse a message that never arrived: the application was told its session broke. */
const covering: ReadonlySet<End | undefined> = new Set<End | undefined>(['lost', 'rejected', 'destroyed', 'peer-closed', 'ctx-closed', 'gone']);

/** One client session incarnation (a client opens a new one after a loss). */
export class Inc {
  session: Session | undefined;
  /** The context it was opened on. */
  ctx: Context | undefined;
  /** The core's session handle (what the recorder sees). */
  handle = 0;
  state: 'connecting' | 'open' | 'ended' = 'connecting';
  end: End | undefined;
  /** The error the session ended with (undefined: a clean close). */
  endErr: Error | undefined;
  /** Next place in the order the core took this session's messages. */
  order = 0;
  /** Hot-path sends are waiting for 'drain'. */
  blocked = false;
  closeCalled = false;
  closeCalledAt = 0;
  openedAt = 0;
  destroyCalled = false;
  /** tryRequest() in flight, by tag, and their one callback. */
  readonly hot = new Map<number, Msg>();
  hotDone: HotCallback | undefined;
  readonly msgs: Msg[] = [];
  constructor(readonly client: number, readonly n: number) {}
}

export interface Msg {
  id: number;
  client: number;
  inc: Inc;
  kind: 'req' | 'ow';
  /** Sent with tryRequest()/trySend(). */
  hot: boolean;
  receipt: boolean;
  dataLen: number;
  /** When the application called (µs). */
  calledAt: number;
  timeoutMs: number;
  /** The core took it (its order is set). */
  submitted: boolean;
  order: number;
  seq: number;
  tag: number;
  delivered: number;
  /** Network link that delivered it first (for targeted tests). */
  deliveredLink: number;
  outcome: Outcome | undefined;
  /** Receipts seen (a send() resolving with receipt, or a request's receipt callback). */
  receipts: number;
  /** The application aborted it. */
  aborted: boolean;
  /** The responder saw its signal aborted (CANCEL). */
  serverCancelled: boolean;
  /** The request's promise or callback. */
  op: Op | undefined;
}

/** A promise or callback the application started: settles exactly once. */
export class Op {
  n = 0;
  constructor(readonly what: string, readonly at: number) {}
}

export class Ledger {
  readonly msgs = new Map<number, Msg>();
  readonly counts: Record<Kind, number> = { lost: 0, duplicated: 0, order: 0, stuck: 0, unsettled: 0, leaked: 0 };
  readonly details: string[] = [];
  readonly ops: Op[] = [];
  #lastOrder = new Map<Inc, number>();
  #nextId = 1;

  newId(): number {
    return this.#nextId++;
  }

  report(kind: Kind, what: string): void {
    this.counts[kind]++;
    if (this.details.length < 50) this.details.push(`${kind}: ${what}`);
  }

  get violations(): number {
    let n = 0;
    for (const k of kinds) n += this.counts[k];
    return n;
  }

  /** The application started something that must settle once. */
  track(what: string, now: number): Op {
    const op = new Op(what, now);
    this.ops.push(op);
    return op;
  }

  settle(op: Op | undefined, now: number): void {
    if (!op) return;
    op.n++;
    if (op.n === 2) this.report('unsettled', `${op.what} (started at ${op.at}us) settled twice, again at ${now}us`);
  }

  add(m: Msg): void {
    this.msgs.set(m.id, m);
    m.inc.msgs.push(m);
  }

  /** A message the session did not take (a hot send without credit): forgotten, issued again later. */
  drop(m: Msg): void {
    this.msgs.delete(m.id);
    const i = m.inc.msgs.indexOf(m);
    if (i >= 0) m.inc.msgs.splice(i, 1);
  }

  /** The core took message id on session `handle`: its place in the session's order. */
  submitted(id: number, handle: number, kind: 'req' | 'ow', r: number): void {
    const m = this.msgs.get(id);
    if (!m || m.kind !== kind) { this.report('lost', `the core took a ${kind} with id ${id} the application never sent as such`); return; }
    if (m.submitted) { this.report('duplicated', `id ${id} given to the core twice`); return; }
    if (m.inc.handle !== handle) { this.report('lost', `id ${id} went to session ${handle}, not its own (${m.inc.handle})`); return; }
    m.submitted = true;
    m.order = m.inc.order++;
    if (kind === 'req') m.tag = r;
    else m.seq = r;
  }

  /** The receiving application got message id; returns its record if it is one we sent. */
  delivered(id: number, client: number, inc: number, kind: 'req' | 'ow', link: number, now: number): Msg | undefined {
    const m = this.msgs.get(id);
    if (!m || m.client !== client || m.inc.n !== inc || m.kind !== kind) {
      this.report('lost', `delivered a message that was never sent as such: id ${id} client ${client} inc ${inc} ${kind}`);
      return undefined;
    }
    if (!m.submitted) {
      this.report('lost', `id ${id} delivered but the core never took it`);
      return undefined;
    }
    m.delivered++;
    if (m.delivered > 1) {
      this.report('duplicated', `id ${id} (${kind}, client ${client} inc ${inc} order ${m.order}) delivered ${m.delivered} times, last at ${now}us`);
      return m;
    }
    m.deliveredLink = link;
    const last = this.#lastOrder.get(m.inc) ?? -1;
    if (m.order !== last + 1) {
      this.report('order', `client ${client} inc ${inc}: delivered order ${m.order} (id ${id}) after order ${last}, at ${now}us`);
    }
    if (m.order > last) this.#lastOrder.set(m.inc, m.order);
    return m;
  }

  /** The request got its outcome; a second one is a violation. */
  outcome(m: Msg, o: Outcome, now: number): void {
    if (m.outcome !== undefined) {
      this.report('duplicated', `request id ${m.id} got ${o} at ${now}us after ${m.outcome}`);
      return;
    }
    m.outcome = o;
  }

  /** End-of-scenario checks over every message sent and every operation started. */
  check(): void {
    for (const op of this.ops) {
      if (op.n === 0) this.report('unsettled', `${op.what} (started at ${op.at}us) never settled`);
    }
    for (const m of this.msgs.values()) {
      if (!m.submitted) continue;
      const covered = covering.has(m.inc.end);
      if (m.delivered === 0 && !covered) {
        this.report('lost', `${m.kind} id ${m.id} (client ${m.client} inc ${m.inc.n} order ${m.order}) never delivered; session ${m.inc.end ?? m.inc.state}`);
      }
      if (m.kind === 'ow' && m.receipt && m.receipts === 0 && m.inc.end === 'closed') {
        this.report('lost', `ow id ${m.id} (client ${m.client} inc ${m.inc.n}) asked for a receipt and got none before a clean close`);
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
