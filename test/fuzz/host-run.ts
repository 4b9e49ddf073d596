// The host fuzzer: hostile byte streams through the real server Context
// (host/context.ts, host/server.ts, host/session.ts), over mem:// and, as a
// smoke run, over tcp:// on 127.0.0.1.
//
//   npm run fuzz -- --host --runs N [--seed S] [--tcp-runs M]   # mem, then tcp
//   npm run fuzz -- --host --tcp --runs N [--seed S]            # tcp only
//   npm run fuzz -- --host --seed S --only K [--tcp]            # replay run K alone, print its actions
//   npm run fuzz -- --host --seed S --only A..B [--family F] [--trace]   # runs A..B on one context (bisecting)
//
// One run = one hostile peer script (host-scripts.ts): a connection (or a
// few, or a flood) and what it does. Runs go in parallel against one server
// context per `perContext` runs; on the same context a legitimate client
// (host-legit.ts) keeps a session busy the whole time. Each context:
//   - a server: Context + serveContext, one of the VARIANTS below (defaults,
//     and smaller limits so they are reached), short admission deadlines so
//     never-closing peers cycle;
//   - its usage() sampled (every 2 ms and after every hostile action):
//     peaks of rxBytes + heldBytes, lanes, handshakes, sessions, each
//     checked against its limit (`over`; for received bytes: what the
//     server holds beyond what hostile peers paid for with bytes, against
//     the host's own claim budget, see rxBudget);
//   - every connection a peer held open (ignoring the server's FIN) must be
//     let go by the server within its bound: the handshake deadline, or the
//     dead-lane time (3 × the larger keepalive) once a session is open, plus
//     the linger (`held`);
//   - at the end the legitimate session's ledger is checked (`disturbed`),
//     the hostile peers are gone, and usage() must come back to 0 (sessions,
//     lanes, handshakes, lingering, payloads, bytes, timers) before the
//     context is closed, and be 0 after (`leak`);
//   - a wrong session key must never join a lane to a session (`escape`).
// Anything thrown out of the host (uncaughtException, unhandledRejection) or
// a context that failed counts as a `throw`. Exits non-zero on any of them.

import { Context, ContextUsage, SessionRequestInfo, SessionDecision } from '../../host/context';
import { serveContext, closeContext } from '../../host/server';
import type { Session, Handler, HandlerResult } from '../../host/session';
import { connect, LimitError } from '../../host/index';
import type { CoreConfig } from '../../host/core';
import { defaultConfig } from '../../host/core';
import { Code } from '../../host/errors';
import { cuts } from './harness';
import { Conn, View, newView, tick, sleep, Transport } from './host-peer';
import {
  hostScript, HostScript, HostTarget, Action, H_LATER, H_THROW, H_HANG, A_REJECT, A_REDIRECT, A_LATE, A_THROW,
  FUZZ_PSK,
} from './host-scripts';
import { Legit, ServerLedger, newLedger, legitNumber } from './host-legit';

const MiB = 1024 * 1024;

interface Variant {
  /** Every lane must prove FUZZ_PSK. */
  psk?: boolean;
  name: string;
  core: Partial<CoreConfig>;
  admission: { maxHandshakes: number; maxHandshakesPerAddress: number; handshakeMs: number; lingerMs: number };
}

/**
 * Server contexts, in turn. Timers are short so that idle hostile sessions
 * die (3 × 250 ms) and are lost (resumeMs) within a context's lifetime.
 */
export const VARIANTS: Variant[] = [
  {
    name: 'default',
    core: { keepaliveMs: 250, resumeMs: 400, helloTimeoutMs: 1000 },
    admission: { maxHandshakes: 256, maxHandshakesPerAddress: 64, handshakeMs: 200, lingerMs: 50 },
  },
  {
    name: 'small',
    core: {
      maxMessageBytes: 1 * MiB, windowBytes: 65536, windowMsgs: 64, maxRequests: 16, maxSessions: 128, maxLanes: 512,
      keepaliveMs: 200, resumeMs: 300, helloTimeoutMs: 1000,
    },
    admission: { maxHandshakes: 32, maxHandshakesPerAddress: 16, handshakeMs: 150, lingerMs: 20 },
  },
  {
    name: 'mid',
    core: {
      maxMessageBytes: 8 * MiB, windowBytes: 128 * 1024, windowMsgs: 256, maxRequests: 64,
      keepaliveMs: 250, resumeMs: 400, helloTimeoutMs: 1000,
    },
    admission: { maxHandshakes: 128, maxHandshakesPerAddress: 32, handshakeMs: 200, lingerMs: 50 },
  },
  {
    // Pre-shared keys: every hostile HELLO without one is refused before onSession; the 'auth'
    // scripts prove a wrong key, the right one (an insider), or misbehave in the AUTH stage.
    name: 'psk',
    core: { maxMessageBytes: 8 * MiB, keepaliveMs: 250, resumeMs: 400, helloTimeoutMs: 1000 },
    admission: { maxHandshakes: 128, maxHandshakesPerAddress: 32, handshakeMs: 200, lingerMs: 50 },
    psk: true,
  },
];

export interface HostFuzzOptions {
  runs: number;
  seed: number;
  transport: Transport;
  /** Replay only this run (on a fresh context of its variant), printing its actions. */
  only?: number;
  /** With only: replay runs only..onlyTo (inclusive) on one context; actions printed for a single run. */
  onlyTo?: number;
  /** Runs per server context (default 1000 over mem, 250 over tcp). */
  perContext?: number;
  /** Hostile scripts in flight at once (default 96 over mem, 16 over tcp). */
  concurrency?: number;
  log?: (line: string) => void;
  /** Problems printed in full (the rest are counted). */
  printLimit?: number;
  /** Diagnostic: play only the runs whose script kind starts with this (a run keeps its script). */
  family?: string;
  /** Diagnostic: record each connection's first writes and print them with a `held` problem; log the first large excess. */
  trace?: boolean;
}

export type ProblemKind = 'throw' | 'disturbed' | 'over' | 'held' | 'leak' | 'escape' | 'harness';

export interface Problem {
  kind: ProblemKind;
  context: number;
  message: string;
  /** Runs that could be to blame (in flight when it was seen). */
  runs: number[];
}

interface Peaks {
  rxHeld: number;
  /** rx+held beyond what hostile peers paid for (see Epoch.allowance): checked against the budget. */
  excess: number;
  lanes: number;
  handshakes: number;
  sessions: number;
  lingering: number;
}

export interface ContextReport {
  n: number;
  variant: string;
  runs: number;
  peaks: Peaks;
  limits: { rxHeld: number; lanes: number; handshakes: number; sessions: number };
  legit: { requests: number; messages: number; laneDowns: number };
  newcomer: 'admitted' | 'refused (limit)' | 'failed' | 'not tried';
  heldChecked: number;
  longHeld: number;
}

export interface HostFuzzResult {
  transport: Transport;
  runs: number;
  seconds: number;
  problems: Problem[];
  counts: Record<ProblemKind, number>;
  contexts: ContextReport[];
  kinds: Map<string, number>;
  /** What the hostile peers heard: accepts, joins, REJECT reasons, ERROR codes, connections ended without a word. */
  answers: { conns: number; accepts: number; joins: number; rejects: Map<number, number>; errors: Map<number, number>; silentEnds: number };
  arrayBuffersPeak: number;
}

let contextSeq = 0;

/**
 * What a context may allocate for received payloads that no peer paid for
 * with bytes: claims are allocated whole while the context's
 * allocated-but-unfilled bytes stay within 16 MiB, then grow as bytes
 * arrive (docs/api.md, Limits: "claims cost at most 16 MiB + 64 KiB per lane").
 */
export const HOST_CLAIM_BUDGET = 16 * MiB;

/** The legitimate session's largest payload on a context with these settings. */
export function legitMaxData(core: Partial<CoreConfig>): number {
  const c = { ...defaultConfig, ...core };
  return Math.min(c.maxMessageBytes >>> 3, 256 * 1024);
}

/**
 * The per-context budget for received bytes the server holds (rxBytes +
 * heldBytes) beyond what hostile peers paid for (Epoch.allowance: 2 × the
 * bytes they wrote, 64 KiB per lane with a session): the host's claim
 * budget, and the legitimate session's payloads (two lanes, each with one
 * arriving, doubled).
 */
export function rxBudget(core: Partial<CoreConfig>): number {
  return HOST_CLAIM_BUDGET + 4 * legitMaxData(core);
}

interface Held {
  conn: Conn;
  run: number;
  kind: string;
  /** ms (performance.now) by which the server must have let go. */
  deadline: number;
  long: boolean;
}

/** One server context, its legitimate client, and the runs played against it. */
class Epoch {
  readonly n: number;
  readonly ctx: Context;
  readonly sessions: Set<Session>;
  readonly ledgers = new Map<bigint, ServerLedger>();
  readonly conns = new Set<Conn>();
  readonly held: Held[] = [];
  readonly clientCtx: Context;
  legit: Legit | undefined;
  portal = '';
  readonly target: HostTarget;
  readonly peaks: Peaks = { rxHeld: 0, excess: 0, lanes: 0, handshakes: 0, sessions: 0, lingering: 0 };
  readonly limits: ContextReport['limits'];
  readonly over = new Set<string>();
  runs = 0;
  /**
   * Received bytes the server may hold for hostile peers, by what they sent:
   * 2 × every byte written (payload buffers grow by doubling) + 64 KiB per
   * lane with a session (the first piece of a payload, allocated at its
   * claim), from the write until the run's connections are all gone and its
   * session is lost (resumeMs later).
   */
  allowance = 0;
  debugRuns = new Map<number, { kind: string; conns: Conn[]; acct: { bytes: number } }>();
  newcomer: ContextReport['newcomer'] = 'not tried';
  newcomerDone: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly f: Fuzz, readonly variant: Variant, readonly transport: Transport) {
    this.n = ++contextSeq;
    const core = { ...variant.core, seed: (f.seed * 1000 + this.n) % 2 ** 40 || 1 };
    this.ctx = new Context({ core, admission: variant.admission });
    const c = { ...defaultConfig, ...variant.core };
    this.limits = { rxHeld: rxBudget(variant.core), lanes: c.maxLanes, handshakes: variant.admission.maxHandshakes, sessions: c.maxSessions };
    this.target = {
      transport, maxMessageBytes: c.maxMessageBytes, windowMsgs: c.windowMsgs, windowBytes: c.windowBytes,
      maxRequests: c.maxRequests, maxHandshakes: variant.admission.maxHandshakes,
      maxHandshakesPerAddress: variant.admission.maxHandshakesPerAddress, handshakeMs: variant.admission.handshakeMs,
    };
    this.sessions = serveContext(this.ctx, { handler: this.#handler, onMessage: this.#onMessage }, this.#policy);
    if (variant.psk) this.ctx.setPsk({ [FUZZ_PSK.identity]: FUZZ_PSK.key });
    this.clientCtx = new Context({ core: { keepaliveMs: 500, resumeMs: 5000, maxSessions: 8, maxLanes: 32, seed: this.n + 77 } });
  }

  async start(): Promise<boolean> {
    const uri = this.transport === 'mem' ? `mem://fuzz-${this.n}/svc` : 'tcp://127.0.0.1:0/svc';
    this.portal = await this.ctx.listen(uri);
    this.#timer = setInterval(() => this.sample(), 2);
    const maxData = legitMaxData(this.variant.core);
    const ledger = newLedger();
    const legit = new Legit(this.portal, this.clientCtx, this.f.seed ^ this.n, maxData, ledger, this.variant.psk ? FUZZ_PSK : undefined);
    this.legit = legit;
    if (!(await legit.open(5000))) return false;
    this.ledgers.set(legit.session!.id, ledger);
    legit.start(2);
    return true;
  }

  // ---- the server's application ----

  #handler: Handler = (req) => {
    const led = this.ledgers.get(req.session.id);
    if (led) {
      const n = legitNumber(req.header, 'q');
      led.requests.set(n, (led.requests.get(n) ?? 0) + 1);
      return { header: req.header, data: req.data };
    }
    const echo: HandlerResult = { header: req.header.subarray(0, 16), data: req.data };
    switch (req.header.length ? req.header[0] : 0) {
      case H_LATER: return new Promise((res) => setTimeout(() => res(echo), 1 + (req.data.length % 20)));
      case H_THROW: throw new Error('hostile request refused');
      case H_HANG: return new Promise((res) => {
        const t = setTimeout(() => res(undefined), 300);
        req.signal.addEventListener('abort', () => { clearTimeout(t); res(undefined); }, { once: true });
      });
      default: return echo;
    }
  };

  #onMessage = (s: Session, h: Buffer): void => {
    const led = this.ledgers.get(s.id);
    if (led) led.messages.push(legitNumber(h, 'm'));
  };

  #policy = (info: SessionRequestInfo): SessionDecision | Promise<SessionDecision> => {
    switch (info.attrs.length ? info.attrs[0] : 0) {
      case A_REJECT: return { reject: Code.REJECTED, message: 'not you' };
      case A_REDIRECT: return { redirect: ['mem://nowhere/svc'] };
      case A_LATE: return new Promise((res) => setTimeout(() => res({ accept: true }), info.attrs.length % 300));
      case A_THROW: throw new Error('onSession threw');
      default: return { accept: true };
    }
  };

  // ---- measurements ----

  sample(): void {
    if (this.ctx.failed) return;
    const u = this.ctx.usage();
    const p = this.peaks;
    const rx = u.rxBytes + u.heldBytes;
    if (rx > p.rxHeld) p.rxHeld = rx;
    const excess = Math.max(0, rx - this.allowance);
    if (excess > p.excess) p.excess = excess;
    if (this.f.o.trace && excess > 4 * MiB && !this.over.has('debug')) {
      this.over.add('debug');
      this.f.log(`debug: excess ${fmtBytes(excess)} allowance ${fmtBytes(this.allowance)} usage ${JSON.stringify(u)} runs ${[...this.f.active].join(' ')}`);
      for (const [run, d] of this.debugRuns) {
        const live = d.conns.filter((c) => !c.closed);
        if (live.length) this.f.log(`  run ${run} ${d.kind}: ${live.length} live, paid ${fmtBytes(d.acct.bytes)}, out ${live.map((c) => c.bytesOut).join(',')}`);
      }
    }
    if (u.lanes > p.lanes) p.lanes = u.lanes;
    if (u.handshakes > p.handshakes) p.handshakes = u.handshakes;
    if (u.sessions > p.sessions) p.sessions = u.sessions;
    if (u.lingering > p.lingering) p.lingering = u.lingering;
    const l = this.limits;
    if (excess > l.rxHeld) this.#over('rx+held beyond what hostile peers sent', excess, l.rxHeld, fmtBytes);
    if (u.lanes > l.lanes) this.#over('lanes', u.lanes, l.lanes);
    if (u.handshakes > l.handshakes) this.#over('handshakes', u.handshakes, l.handshakes);
    if (u.sessions > l.sessions) this.#over('sessions', u.sessions, l.sessions);
  }

  #over(what: string, v: number, limit: number, fmt: (x: number) => string = String): void {
    if (this.over.has(what)) return;
    this.over.add(what);
    this.f.problem('over', this, `${what} ${fmt(v)} over its limit ${fmt(limit)} (${this.variant.name})`);
  }

  /** A connection the peer keeps open: the server must let it go by its deadline. */
  hold(conn: Conn, run: number, sc: HostScript): void {
    const now = performance.now();
    const a = this.variant.admission;
    const ka = Math.max(this.variant.core.keepaliveMs ?? 1000, sc.keepaliveMs);
    // In its handshake: the deadline (or eviction). With a session: the dead-lane time. Then the linger.
    const bound = Math.max(a.handshakeMs, 3 * ka) + a.lingerMs;
    this.held.push({ conn, run, kind: sc.kind, deadline: now + bound + 1000 + bound / 2, long: 3 * ka > 10_000 });
  }

  /** A legitimate newcomer: a second session opened (and used) while the attack goes on. */
  newcomerTry(): void {
    this.newcomerDone = (async () => {
      try {
        const s = await connect(this.portal, { context: this.clientCtx, lanes: 1, timeout: 5000, psk: this.variant.psk ? FUZZ_PSK : undefined });
        const r = await s.request('q:newcomer', 'hello', { timeout: 5000 });
        this.newcomer = r.data.toString() === 'hello' ? 'admitted' : 'failed';
        await s.close({ timeout: 1000 }).catch(() => undefined);
      } catch (e) {
        const limit = e instanceof LimitError || (e as { reason?: number }).reason === Code.LIMIT;
        this.newcomer = limit ? 'refused (limit)' : 'failed';
        if (!limit) this.f.problem('disturbed', this, `a new legitimate session could not get in: ${(e as Error).message}`);
      }
    })();
  }

  /** After the runs: the legitimate ledger. */
  async verifyLegit(): Promise<void> {
    const legit = this.legit;
    if (!legit) return;
    await legit.stop();
    await legit.verify();
    await this.newcomerDone;
    if (legit.problems.length) {
      this.f.problem('disturbed', this, `legitimate session: ${legit.problems.slice(0, 3).join('; ')}${legit.problems.length > 3 ? ` (+${legit.problems.length - 3} more)` : ''}`);
    }
  }

  /** Held connections let go, usage back to 0, the context closed. */
  async finish(): Promise<ContextReport> {
    // 1. Every held connection ends by its deadline (the long ones are cut short: not waited for).
    let checked = 0, long = 0;
    const waiting = this.held.filter((h) => !h.long);
    checked = waiting.length;
    long = this.held.length - checked;
    while (waiting.some((h) => !this.#letGo(h.conn) && performance.now() < h.deadline)) await sleep(25);
    for (const h of waiting) {
      if (this.#letGo(h.conn)) continue;
      const c = h.conn;
      this.f.problem('held', this,
        `run ${h.run} (${h.kind}): a connection the peer held open was not let go by the server within ` +
        `${Math.round(h.deadline - c.lastWriteAt)} ms of its last byte (answers: ${answerOf(c)}; server FIN ${c.finIn ? 'sent' : 'not sent'})` +
        (c.trace ? `\n    writes: ${c.trace.join('\n            ')}` : ''), [h.run]);
    }
    // The long ones: with a session, the server waits out 3 x the keepalive the peer
    // announced, capped at 60 s (3 minutes: test/mem-host.test.ts checks the cap on a
    // hand-moved clock); not waited for here. In their handshake they go at its deadline.
    for (const h of this.held.filter((x) => x.long)) {
      const c = h.conn;
      if (this.#letGo(c) || c.reader.accepts + c.reader.joins > 0) continue;
      if (performance.now() > c.openedAt + this.variant.admission.handshakeMs + 1500) {
        this.f.problem('held', this, `run ${h.run} (${h.kind}): a connection held open in its handshake was not let go (answers: ${answerOf(c)})`, [h.run]);
      }
    }
    for (const c of this.conns) c.destroy();
    // 2. The legitimate sessions close.
    await this.legit?.close();
    await this.clientCtx.close();
    // 3. With every peer gone, the context comes back to nothing (hostile sessions are lost after resumeMs).
    const v = { ...defaultConfig, ...this.variant.core };
    const until = performance.now() + v.resumeMs + 3 * v.keepaliveMs + this.variant.admission.handshakeMs + 3000;
    let u = this.ctx.usage();
    // Stop early once no session, lane, connection or timer is left: nothing could release what is still held.
    while (!idle(u) && !(u.sessions + u.lanes + u.handshakes + u.lingering + u.timers === 0) && performance.now() < until && !this.ctx.failed) {
      await sleep(25);
      u = this.ctx.usage();
    }
    if (this.ctx.failed) this.f.problem('throw', this, `the server context failed: ${this.ctx.failed.message}`);
    else if (!idle(u)) this.f.problem('leak', this, `usage() with every peer gone, before close: ${fmtUsage(u)}`, []);
    // 4. Closed, it holds nothing.
    await closeContext(this.ctx, this.sessions, 500);
    if (this.#timer) clearInterval(this.#timer);
    const after = this.ctx.usage();
    if (!idle(after)) this.f.problem('leak', this, `usage() after close: ${fmtUsage(after)}`);
    return {
      n: this.n, variant: this.variant.name, runs: this.runs, peaks: this.peaks, limits: this.limits,
      legit: { requests: this.legit?.requests ?? 0, messages: this.legit?.messages ?? 0, laneDowns: this.legit?.laneDowns ?? 0 },
      newcomer: this.newcomer, heldChecked: checked, longHeld: long,
    };
  }

  /** The server let the connection go: closed (mem), or at least its FIN (tcp: our half-open socket never closes by itself). */
  #letGo(c: Conn): boolean {
    return c.closed || (this.transport === 'tcp' && c.finIn);
  }
}

function idle(u: ContextUsage): boolean {
  return u.sessions === 0 && u.lanes === 0 && u.handshakes === 0 && u.lingering === 0 && u.txPayloads === 0 &&
    u.rxPayloads === 0 && u.rxBytes === 0 && u.heldBytes === 0 && u.timers === 0;
}

function fmtUsage(u: ContextUsage): string {
  return Object.entries(u).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`).join(', ') || 'all 0';
}

export function fmtBytes(n: number): string {
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function answerOf(c: Conn): string {
  const r = c.reader;
  const parts: string[] = [];
  if (r.challenges) parts.push('CHALLENGE');
  if (r.accepts) parts.push('ACCEPT');
  if (r.joins) parts.push('ACCEPT(joined)');
  if (r.rejects.length) parts.push(`REJECT(${r.rejects.join(',')})`);
  if (r.errors.length) parts.push(`ERROR(${r.errors.join(',')})`);
  if (r.messages) parts.push(`${r.messages} messages`);
  return parts.join(' ') || 'none';
}

function hex(b: Buffer, max = 48): string {
  const h = b.subarray(0, max).toString('hex').replace(/(..)/g, '$1 ').trim();
  return b.length > max ? `${h} ... (${b.length} bytes)` : h;
}

/** The state of one fuzz session (all its contexts). */
class Fuzz {
  readonly problems: Problem[] = [];
  readonly counts: Record<ProblemKind, number> = { throw: 0, disturbed: 0, over: 0, held: 0, leak: 0, escape: 0, harness: 0 };
  readonly active = new Set<number>();
  readonly kinds = new Map<string, number>();
  readonly answers: HostFuzzResult['answers'] = { conns: 0, accepts: 0, joins: 0, rejects: new Map(), errors: new Map(), silentEnds: 0 };
  arrayBuffersPeak = 0;
  printed = 0;

  constructor(readonly seed: number, readonly o: HostFuzzOptions, readonly log: (l: string) => void) {}

  problem(kind: ProblemKind, ep: Epoch | undefined, message: string, runs?: number[]): void {
    this.counts[kind]++;
    const p: Problem = { kind, context: ep?.n ?? 0, message, runs: runs ?? [...this.active].sort((a, b) => a - b) };
    this.problems.push(p);
    if (this.printed < (this.o.printLimit ?? 5)) {
      this.printed++;
      const blame = p.runs.length === 1 ? `run ${p.runs[0]}` : p.runs.length ? `runs in flight: ${p.runs.slice(0, 12).join(' ')}${p.runs.length > 12 ? ' ...' : ''}` : 'no run in flight';
      this.log(`FAIL ${kind} (context ${p.context}${ep ? ` ${ep.variant.name}` : ''}, seed ${this.seed}): ${message}\n  ${blame}` +
        (p.runs.length ? `\n  replay: npm run fuzz -- --host${this.o.transport === 'tcp' ? ' --tcp' : ''} --seed ${this.seed} --only ${p.runs[0]}` : ''));
    }
  }

  tally(ep: Epoch): void {
    const a = this.answers;
    for (const c of ep.conns) {
      const r = c.reader;
      a.conns++;
      a.accepts += r.accepts;
      a.joins += r.joins;
      for (const x of r.rejects) a.rejects.set(x, (a.rejects.get(x) ?? 0) + 1);
      for (const x of r.errors) a.errors.set(x, (a.errors.get(x) ?? 0) + 1);
      if (!r.answered && r.messages === 0 && c.closed && !c.ended) a.silentEnds++;
    }
  }
}

/** Plays one hostile script against an epoch's server. */
async function play(ep: Epoch, run: number, sc: HostScript, verbose?: (l: string) => void): Promise<void> {
  const view: View = newView(ep.legit?.session?.id ?? 0n, ep.target.maxRequests);
  const conns: Conn[] = [];
  const all: Conn[] = [];
  const acct = { bytes: 0 };
  const pay = (n: number): void => { acct.bytes += n; ep.allowance += n; };
  const dial = (): Conn => {
    const c = new Conn(ep.transport, ep.portal, view);
    if (ep.f.o.trace) c.trace = [];
    c.onWrite = (n) => pay(2 * n);
    c.onSession = () => pay(RX_FIRST);
    ep.conns.add(c);
    all.push(c);
    return c;
  };
  const say = verbose ?? (() => undefined);
  if (ep.f.o.trace) ep.debugRuns.set(run, { kind: sc.kind, conns: all, acct });
  for (const a of sc.actions) {
    await step(ep, run, sc, a, conns, dial, view, say);
    ep.sample();
  }
  // A connection the script never ended is held.
  for (const c of conns) if (c && !c.ended && !c.closed && !ep.held.some((h) => h.conn === c)) ep.hold(c, run, sc);
  // What the run paid for is let go once its connections are gone and its session lost.
  const resumeMs = ep.variant.core.resumeMs ?? defaultConfig.resumeMs;
  void Promise.all(all.map((c) => c.released)).then(() => setTimeout(() => { ep.allowance -= acct.bytes; }, resumeMs + 500));
}

/** The first piece of a received ext payload, allocated at its claim (host/context.ts RX_FIRST). */
const RX_FIRST = 64 * 1024;

async function step(ep: Epoch, run: number, sc: HostScript, a: Action, conns: Conn[], dial: () => Conn, view: View, say: (l: string) => void): Promise<void> {
  switch (a.k) {
    case 'dial':
      conns[a.slot] = dial();
      say(`  dial ${a.slot}`);
      await tick();
      return;
    case 'write': {
      const c = conns[a.slot];
      if (!c || c.closed || c.ended) return;
      const b = typeof a.bytes === 'function' ? a.bytes(view) : a.bytes;
      const at = a.every ? Array.from({ length: Math.max(0, b.length - 1) }, (_, i) => i + 1) : a.split !== undefined ? cuts(b.length, a.split) : [];
      say(`  write ${a.slot}${a.note ? ` (${a.note})` : ''}: ${hex(b)}${at.length ? ` cut at ${at.length > 16 ? `${at.length} points` : at.join(',')}` : ''}`);
      let pos = 0;
      for (const end of [...at, b.length]) {
        if (end > pos) c.write(b.subarray(pos, end));
        pos = end;
      }
      await tick();
      return;
    }
    case 'answer': {
      const c = conns[a.slot];
      if (!c) return;
      await c.until(() => (a.decided ? c.reader.decided : c.reader.answered) || c.closed || c.finIn, a.ms);
      say(`  answer on ${a.slot}: ${answerOf(c)}${c.closed ? ', closed' : c.finIn ? ', FIN' : ''}`);
      if (a.mustNotJoin && c.reader.joins > 0) {
        ep.f.problem('escape', ep, `run ${run} (${sc.kind}): a join HELLO with a wrong session key was answered ACCEPT (joined)`, [run]);
      }
      if (a.mustNotOpen && c.reader.accepts + c.reader.joins > 0) {
        ep.f.problem('escape', ep, `run ${run} (${sc.kind}): a lane that did not prove the pre-shared key was answered ACCEPT`, [run]);
      }
      return;
    }
    case 'sleep':
      await sleep(a.ms);
      return;
    case 'trickle': {
      const c = conns[a.slot];
      if (!c) return;
      say(`  trickle ${a.slot}: ${a.bytes} bytes in pieces of ${a.chunk}, ${a.gapMs} ms apart`);
      const piece = Buffer.alloc(Math.min(a.chunk, a.bytes), 0x5a);
      for (let sent = 0; sent < a.bytes && !c.closed && !c.finIn; sent += piece.length) {
        c.write(piece.subarray(0, Math.min(piece.length, a.bytes - sent)));
        if (a.gapMs) await sleep(a.gapMs);
        else await tick();
        ep.sample();
      }
      return;
    }
    case 'flood': {
      say(`  flood: ${a.n} connections${a.half ? ', each sending half a HELLO' : ''}, held`);
      const half = Buffer.from([0x01, 0, 0, 0, 0x50, 0, 0, 0, 1, 0, 1, 0]);
      for (let i = 0; i < a.n; i++) {
        const c = dial();
        if (a.half) c.write(half);
        ep.hold(c, run, sc);
        if ((i & 15) === 15) await tick();
      }
      await tick();
      return;
    }
    case 'final': {
      const c = conns[a.slot];
      if (!c || c.closed || c.ended) return;
      say(`  ${a.how} ${a.slot}`);
      if (a.how === 'end') c.end();
      else if (a.how === 'destroy') c.destroy();
      else ep.hold(c, run, sc);
      return;
    }
  }
}

export async function hostFuzz(o: HostFuzzOptions): Promise<HostFuzzResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const f = new Fuzz(o.seed, o, log);
  const perContext = o.perContext ?? (o.transport === 'mem' ? 1000 : 250);
  const concurrency = o.concurrency ?? (o.transport === 'mem' ? 96 : 16);
  const onThrow = (e: unknown) => f.problem('throw', undefined, `thrown out of the host: ${(e as Error)?.stack ?? String(e)}`);
  process.on('uncaughtException', onThrow);
  process.on('unhandledRejection', onThrow);
  const abTimer = setInterval(() => {
    const ab = process.memoryUsage().arrayBuffers;
    if (ab > f.arrayBuffersPeak) f.arrayBuffersPeak = ab;
  }, 20);
  const contexts: ContextReport[] = [];
  const finishing: Promise<void>[] = [];
  const t0 = performance.now();
  let runs = 0;
  try {
    const first = o.only ?? 0;
    const last = o.only !== undefined ? (o.onlyTo ?? o.only) + 1 : o.runs;
    const verbose = o.only !== undefined && (o.onlyTo ?? o.only) === o.only;
    for (let from = first; from < last;) {
      const to = o.only !== undefined ? last : Math.min(last, (Math.floor(from / perContext) + 1) * perContext);
      const variant = VARIANTS[Math.floor(from / perContext) % VARIANTS.length];
      const ep = new Epoch(f, variant, o.transport);
      if (!(await ep.start())) {
        f.problem('disturbed', ep, `the legitimate session could not open: ${ep.legit?.problems.join('; ')}`);
      }
      if (o.only !== undefined) log(`context ${ep.n} (${variant.name}) at ${ep.portal}; legitimate session ${ep.legit?.session?.id.toString(16) ?? '-'}`);
      let next = from;
      const mid = from + Math.floor((to - from) / 2);
      const worker = async (): Promise<void> => {
        while (next < to) {
          const run = next++;
          if (run === mid && o.only === undefined) ep.newcomerTry();
          const sc = hostScript(o.seed, run, ep.target);
          if (o.family && !sc.kind.startsWith(o.family)) continue;
          const fam = sc.kind.split(':')[0];
          f.kinds.set(fam, (f.kinds.get(fam) ?? 0) + 1);
          f.active.add(run);
          if (o.only !== undefined) log(`run ${run}: ${sc.kind}`);
          try {
            await play(ep, run, sc, verbose ? log : undefined);
          } catch (e) {
            f.problem('harness', ep, `run ${run} (${sc.kind}): the fuzzer itself failed: ${(e as Error)?.stack ?? e}`, [run]);
          } finally {
            f.active.delete(run);
          }
          ep.runs++;
          runs++;
        }
      };
      const tRuns = performance.now();
      await Promise.all(Array.from({ length: Math.min(concurrency, to - from) }, worker));
      if (o.trace) log(`context ${ep.n}: ${to - from} runs in ${((performance.now() - tRuns) / 1000).toFixed(2)} s`);
      await ep.verifyLegit();
      // The context's end (deadlines, quiescence) overlaps the next one's runs.
      const tFin = performance.now();
      finishing.push(ep.finish().then((r) => {
        if (o.trace) log(`context ${ep.n}: finished in ${((performance.now() - tFin) / 1000).toFixed(2)} s`);
        contexts.push(r);
        f.tally(ep);
        if (o.only !== undefined) log(`context ${ep.n}: peaks ${JSON.stringify(r.peaks)}`);
      }, (e) => f.problem('harness', ep, `finishing context: ${(e as Error)?.stack ?? e}`, [])));
      while (finishing.length > 6) await finishing.shift();
      from = to;
    }
    await Promise.all(finishing);
  } finally {
    clearInterval(abTimer);
    process.off('uncaughtException', onThrow);
    process.off('unhandledRejection', onThrow);
  }
  // Timers and callbacks still queued from the last contexts get a moment to throw.
  await sleep(50);
  contexts.sort((a, b) => a.n - b.n);
  return {
    transport: o.transport, runs, seconds: (performance.now() - t0) / 1000, problems: f.problems, counts: f.counts,
    contexts, kinds: f.kinds, answers: f.answers, arrayBuffersPeak: f.arrayBuffersPeak,
  };
}

export function failures(r: HostFuzzResult): number {
  return Object.values(r.counts).reduce((a, b) => a + b, 0);
}

export function hostSummary(r: HostFuzzResult): string {
  const c = r.counts;
  const byVariant = new Map<string, ContextReport[]>();
  for (const x of r.contexts) byVariant.set(x.variant, [...(byVariant.get(x.variant) ?? []), x]);
  const max = (xs: ContextReport[], f: (x: ContextReport) => number) => Math.max(0, ...xs.map(f));
  const all = r.contexts;
  const lines = [
    `host-fuzz (${r.transport}): ${r.runs} runs, ${c.throw} throws, ${c.disturbed} disturbed, ${c.over} over limit, ` +
      `${c.held} held, ${c.leak} leaks, ` +
      `${c.escape} escapes${c.harness ? `, ${c.harness} fuzzer errors` : ''}; ` +
      `peak per context: rx+held ${fmtBytes(max(all, (x) => x.peaks.rxHeld))} (beyond what peers sent ${fmtBytes(max(all, (x) => x.peaks.excess))}), lanes ${max(all, (x) => x.peaks.lanes)}, ` +
      `handshakes ${max(all, (x) => x.peaks.handshakes)}, arrayBuffers ${fmtBytes(r.arrayBuffersPeak)} (process)`,
  ];
  for (const [name, xs] of byVariant) {
    const l = xs[0].limits;
    lines.push(`  ${name} ×${xs.length}: rx+held ${fmtBytes(max(xs, (x) => x.peaks.rxHeld))}, beyond what peers sent ${fmtBytes(max(xs, (x) => x.peaks.excess))} (limit ${fmtBytes(l.rxHeld)}), ` +
      `lanes ${max(xs, (x) => x.peaks.lanes)} (limit ${l.lanes}), handshakes ${max(xs, (x) => x.peaks.handshakes)} (limit ${l.handshakes}), ` +
      `sessions ${max(xs, (x) => x.peaks.sessions)} (limit ${l.sessions}), lingering ${max(xs, (x) => x.peaks.lingering)}`);
  }
  const lg = all.reduce((a, x) => ({ q: a.q + x.legit.requests, m: a.m + x.legit.messages, d: a.d + x.legit.laneDowns }), { q: 0, m: 0, d: 0 });
  const nc = new Map<string, number>();
  for (const x of all) nc.set(x.newcomer, (nc.get(x.newcomer) ?? 0) + 1);
  lines.push(`  legitimate: ${lg.q} requests answered, ${lg.m} messages delivered, ${lg.d} lanes lost (failovers); newcomers: ` +
    [...nc.entries()].map(([k, n]) => `${n} ${k}`).join(', '));
  const a = r.answers;
  const codes = (m: Map<number, number>) => [...m.entries()].sort((x, y) => x[0] - y[0]).map(([k, n]) => `${k}=${n}`).join(' ') || 'none';
  lines.push(`  hostile: ${a.conns} connections, ${a.accepts} accepted, ${a.joins} joined, REJECT ${codes(a.rejects)}, ERROR ${codes(a.errors)}, ` +
    `${a.silentEnds} ended by the server without a word; held connections checked ${all.reduce((s, x) => s + x.heldChecked, 0)}, ` +
    `not waited for (keepalive announced > 3 s) ${all.reduce((s, x) => s + x.longHeld, 0)}`);
  lines.push(`  runs by family: ${[...r.kinds.entries()].sort().map(([k, n]) => `${k}=${n}`).join(', ')}`);
  lines.push(`  ${r.seconds.toFixed(1)} s, ${Math.round(r.runs / r.seconds)} runs/s, ${all.length} server contexts`);
  return lines.join('\n');
}

/** The CLI (`npm run fuzz -- --host ...`), with the arguments test/fuzz/run.ts parsed (strict parseArgs: --x V and --x=V alike). */
export async function hostMain(values: Record<string, string | boolean | undefined>): Promise<void> {
  const opt = (name: string): string | undefined => (typeof values[name] === 'string' ? values[name] as string : undefined);
  const runs = Number(opt('runs') ?? 2000);
  const seed = Number(opt('seed') ?? Date.now() % 1_000_000);
  // --only K, or --only A..B (those runs on one context)
  const onlyArg = opt('only')?.split('..').map(Number);
  const only = onlyArg?.[0];
  const onlyTo = onlyArg?.[1];
  const tcpOnly = values.tcp === true;
  const tcpRuns = Number(opt('tcp-runs') ?? 500);
  const perContext = opt('per-context') !== undefined ? Number(opt('per-context')) : undefined;
  const concurrency = opt('concurrency') !== undefined ? Number(opt('concurrency')) : undefined;
  if (!Number.isInteger(runs) || runs < 0 || !Number.isInteger(seed) || !Number.isInteger(tcpRuns)) {
    console.error('usage: npm run fuzz -- --host --runs N [--seed S] [--tcp-runs M] [--tcp] [--only K | --only A..B] [--per-context N] [--concurrency C] [--family F] [--trace] [--print N]');
    process.exit(2);
  }
  const print = Number(opt('print') ?? 5);
  const plan: [Transport, number][] = tcpOnly ? [['tcp', runs]] : only !== undefined ? [['mem', runs]] : [['mem', runs], ['tcp', tcpRuns]];
  let failed = 0;
  for (const [transport, n] of plan) {
    if (n === 0 && only === undefined) continue;
    console.log(`host-fuzz: seed ${seed}, ${transport}${only !== undefined ? `, run ${only}${onlyTo !== undefined ? `..${onlyTo}` : ''} only` : `, ${n} runs`}`);
    const r = await hostFuzz({
      runs: n, seed, transport, only, onlyTo, perContext, concurrency, printLimit: print, family: opt('family'), trace: values.trace === true,
    });
    console.log(hostSummary(r));
    failed += failures(r);
  }
  process.exitCode = failed ? 1 : 0;
  // Listeners and timers of closed contexts are gone; anything left must not keep the process up.
  setTimeout(() => process.exit(), 200).unref();
}
