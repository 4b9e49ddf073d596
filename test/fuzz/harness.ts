// The fuzz harness: two cores in one process, a client (cli) and a server
// (srv), joined by a healthy two-lane session that must keep working while
// hostile peers throw bytes at both cores on other lanes.
//
// One hostile run = one Script (scripts.ts): a hostile connection (a client
// lane accepted by srv, or a lane cli opened to a hostile portal), the bytes
// the hostile peer sends on it, fed in random pieces, and the host's answers
// (accept, laneUp, responses) in between. After every run the harness tears
// the hostile lanes and sessions down and drives one request/response through
// the healthy session.
//
// Properties checked (each failure has a kind, see Failure):
//   trap       the core trapped (CoreTrapError): always a core bug
//   escape     hostile input touched something that is not its own: an event
//              for the healthy session or another lane, a protocol error
//              blamed on a lane that was not fed, a transmit for a lane the
//              host does not know
//   healthy    the healthy session did not complete its request/response,
//              or saw an error, a lane close or a session event
//   violation  a delivered message breaks the core's own limits: sequence
//              numbers not increasing, header/data past the limits or past
//              memory, a request tag outside the session's request table
//   miss       a frame built to break exactly one rule was not refused with
//              the expected code on its own lane (or another lane was closed)
//   stuck      rx made no progress on a live lane with nothing to wait for
//   memory     the core's memory grew (it must stay at its size after init)
//   overflow   eventOverflow() became non-zero
//   diff       the same bytes fed whole and fed in random pieces produced
//              different events

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Core, CoreEvent, CoreConfig, Ev } from '../../host/core';
import { CoreTrapError, codeNames } from '../../host/errors';
import { T, isMessage, MSG_HEADER, BATCH_SIZE, ACCEPT_SIZE, FUZZ_KEY } from './frames';
import { Rng } from './rng';

/** Small tables so limits are reached quickly; windows small enough to wrap often. */
export const fuzzConfig: Partial<CoreConfig> = {
  maxSessions: 8,
  maxLanes: 32,
  windowMsgs: 64,
  windowBytes: 65536,
  maxRequests: 64,
  keepaliveMs: 1000,
  resumeMs: 10000,
  helloTimeoutMs: 5000,
  backoffMinMs: 20,
  backoffMaxMs: 1000,
  eventCap: 1024,
};

const E_TRANSPORT = 20;
const AUTH_CODE = 22;
/** The fuzz host's nonce for every CHALLENGE and its proof for every ACCEPT (it computes no MAC: the script rules on proofs). */
const AUTH_NONCE = Buffer.alloc(32, 0x4e);
const AUTH_PROOF = Buffer.alloc(32, 0x50);

export type Side = 'srv' | 'cli';

/** What the hostile peer has learned from what the target core sent it. */
export interface PeerView {
  /** Session id from the ACCEPT the server sent (server target). */
  sessionId: bigint;
  /** Tags of the requests the target sent to the peer, in order. */
  tags: number[];
  /** Messages the target sent to the peer (highest seq + 1). */
  sent: number;
  /** The target's windows (what its ACCEPT or HELLO announced). */
  R: number;
}

export type Bytes = Buffer | ((v: PeerView) => Buffer);

export type Step =
  /** The hostile peer sends bytes on its lane `lane` (a slot: 0, 1, ...). */
  | { k: 'rx'; lane: number; bytes: Bytes; split: number; chaos?: boolean }
  /** Server target: the hostile peer opens a second connection. */
  | { k: 'open' }
  /** The target's application sends n requests on the hostile session. */
  | { k: 'requests'; n: number };

export interface Expect {
  /** Slot of the lane that got the bad frame. */
  lane: number;
  /** The protocol error codes that are right for it (first one counts). */
  protocol?: number[];
  /** Or: the lane must close with this code and no protocol error. */
  close?: number;
  /** Or: nothing wrong was sent; no lane may get an error or close. */
  none?: boolean;
  /** With none: exactly this many requests and one-way messages delivered. */
  delivered?: number;
}

export interface Script {
  side: Side;
  kind: string;
  steps: Step[];
  /** Server host's answer to a session request. */
  decision: 'accept' | 'reject' | 'redirect';
  /** Whether the target's application answers hostile requests. */
  respond: boolean;
  /** Client target: lanes the session asks for. */
  clientLanes: number;
  expect?: Expect;
  /** Feed once whole and once in pieces, and compare the events. */
  diff: boolean;
  /** Server target, a HELLO with F_AUTH: the host's verdict on the AUTH that answers its CHALLENGE. */
  auth?: 'pass' | 'fail';
}

export type FailureKind =
  'trap' | 'escape' | 'healthy' | 'violation' | 'miss' | 'stuck' | 'memory' | 'overflow' | 'diff';

export interface Failure {
  kind: FailureKind;
  message: string;
}

interface HostileLane {
  handle: number;
  slot: number;
  /** Its HELLO had F_AUTH and named no session: once passed, the host decides the new session. */
  authNew?: boolean;
  /** The core closed it (EV_CLOSE_LANE). */
  closed: boolean;
  /** The host reported it down (laneDown). */
  down: boolean;
  /** Ext payload bytes the host still has to take off the stream. */
  extLeft: number;
  extWait: boolean;
  /** Codes of the ERROR frames the core sent the peer on this lane. */
  errorsSent: number[];
}

interface RunState {
  script: Script;
  core: Core;
  name: Side;
  lanes: Map<number, HostileLane>;
  slots: HostileLane[];
  sessions: Set<number>;
  /** Request table size per hostile session (for the delivery checks). */
  R: Map<number, number>;
  lastSeq: Map<number, number>;
  /** Requests and one-way messages delivered. */
  delivered: number;
  protoErrors: { slot: number; code: number }[];
  closes: { slot: number; code: number }[];
  sig: string[];
  /** The bytes of every rx step, as fed. */
  fed: Buffer[];
  view: PeerView;
  log: LogEntry[];
  split: boolean;
}

interface Ctx {
  kind: 'hostile' | 'healthy' | 'timer';
  run?: RunState;
  /** The lane whose bytes this input carries (0: none). */
  fed: number;
  /** Sessions named by events of this input may be adopted into the run. */
  adopt: boolean;
}

interface LogEntry {
  core: Side;
  op: string;
  slot?: number;
  bytes?: Uint8Array;
  result?: number;
}

interface WireItem {
  to: Core;
  lane: number;
  bytes: Buffer;
}

export interface Stats {
  runs: number;
  failures: Record<FailureKind, number>;
  /** EV_PROTOCOL_ERROR events by code. */
  errors: Map<number, number>;
  /** Lanes closed without a protocol error, by code (peer ERROR, REJECT, ...). */
  closes: Map<number, number>;
  kinds: Map<string, number>;
  healthyRoundTrips: number;
  /** Runs fed both whole and in pieces, with the same bytes, and compared. */
  diffs: number;
  rebuilds: number;
}

export function newStats(): Stats {
  return {
    runs: 0,
    failures: { trap: 0, escape: 0, healthy: 0, violation: 0, miss: 0, stuck: 0, memory: 0, overflow: 0, diff: 0 },
    errors: new Map(), closes: new Map(), kinds: new Map(), healthyRoundTrips: 0, diffs: 0, rebuilds: 0,
  };
}

export function failureCount(s: Stats): number {
  let n = 0;
  for (const k of Object.keys(s.failures) as FailureKind[]) n += s.failures[k];
  return n;
}

export function codeName(c: number): string {
  return codeNames[c] ?? `code-${c}`;
}

const HEALTHY_HDR = Buffer.from('hlth');
const HEALTHY_DATA = 64;

/** Thrown inside a run to stop it (the failure is already recorded). */
class Abort extends Error {}

export class Harness {
  readonly cli: Core;
  readonly srv: Core;
  now = 1_000_000;
  #ev = new CoreEvent();
  #ctx: Ctx = { kind: 'healthy', fed: 0, adopt: false };
  #actions: (() => void)[] = [];
  #wire: WireItem[] = [];
  #mem0: [number, number];
  // The healthy session.
  #hs = 0;
  #hsSrv = 0;
  #hLanes: [Set<number>, Set<number>] = [new Set(), new Set()];
  #links = new Map<Core, Map<number, number>>();
  #hPending = new Map<number, Buffer>();
  #hGot = new Map<number, Buffer>();
  #hCounter = 0;
  #hData = Buffer.alloc(HEALTHY_DATA);
  #failures: Failure[] = [];
  #run: RunState | undefined;

  constructor(readonly config: Partial<CoreConfig> = fuzzConfig, seed = 1) {
    this.cli = new Core({ ...config, seed: seed * 2 + 1 });
    this.srv = new Core({ ...config, seed: seed * 2 + 2 });
    this.#links.set(this.cli, new Map());
    this.#links.set(this.srv, new Map());
    this.#mem0 = [this.cli.memoryBytes, this.srv.memoryBytes];
    this.#openHealthy();
  }

  get memory(): [number, number] {
    return [this.cli.memoryBytes, this.srv.memoryBytes];
  }

  #name(core: Core): Side {
    return core === this.cli ? 'cli' : 'srv';
  }

  #side(core: Core): number {
    return core === this.cli ? 0 : 1;
  }

  #fail(kind: FailureKind, message: string): void {
    this.#failures.push({ kind, message });
  }

  // ---- driving ----

  #input<R>(core: Core, ctx: Ctx, f: () => R): R {
    this.#ctx = ctx;
    const r = f();
    this.#drain(core);
    return r;
  }

  #drain(core: Core): void {
    const n = core.pollEvents();
    const ev = this.#ev;
    for (let i = 0; i < n; i++) this.#onEvent(core, core.event(i, ev));
    let lane: number;
    while ((lane = core.pollTransmit(this.now)) !== 0) this.#onTransmit(core, lane, core.txView());
  }

  /** Runs queued host actions and healthy wire deliveries until all is quiet. */
  #settle(): void {
    for (let guard = 0; ; guard++) {
      if (guard > 100_000) {
        this.#fail('stuck', 'host actions never settle');
        throw new Abort();
      }
      const a = this.#actions.shift();
      if (a) { a(); continue; }
      const w = this.#wire.shift();
      if (w) { this.#deliverHealthy(w); continue; }
      return;
    }
  }

  #deliverHealthy(w: WireItem): void {
    const ctx: Ctx = { kind: 'healthy', fed: w.lane, adopt: false };
    let pos = 0;
    let zero = 0;
    while (pos < w.bytes.length) {
      const r = this.#input(w.to, ctx, () => w.to.rx(w.lane, w.bytes.subarray(pos), this.now));
      if (r < 0) { this.#fail('healthy', `healthy rx on lane ${w.lane} returned ${r}`); throw new Abort(); }
      pos += r;
      if (r === 0 && ++zero > 2) { this.#fail('stuck', `healthy lane ${w.lane} takes no bytes`); throw new Abort(); }
      if (r > 0) zero = 0;
    }
  }

  // ---- outputs ----

  #onTransmit(core: Core, lane: number, view: Uint8Array): void {
    const peer = this.#links.get(core)!.get(lane);
    if (peer !== undefined) {
      this.#wire.push({ to: core === this.cli ? this.srv : this.cli, lane: peer, bytes: Buffer.from(view) });
      return;
    }
    const run = this.#run;
    const hl = run && run.core === core ? run.lanes.get(lane) : undefined;
    if (hl) {
      learn(run!.view, view, hl.errorsSent);
      return;
    }
    this.#fail('escape', `${this.#name(core)} transmitted ${view.length} bytes on lane ${lane}, which the host does not know`);
  }

  #onEvent(core: Core, ev: CoreEvent): void {
    const ctx = this.#ctx;
    const side = this.#side(core);
    const healthySession = side === 0 ? this.#hs : this.#hsSrv;
    const isHealthy = this.#handshake || (ev.session !== 0 && ev.session === healthySession) || this.#hLanes[side].has(ev.lane);
    if (ev.type === Ev.PROTOCOL_ERROR) this.#count(this.#stats?.errors, ev.code);
    if (ctx.kind !== 'hostile') {
      if (!isHealthy) {
        this.#fail('escape', `${this.#name(core)}: ${ctx.kind} input produced event type ${ev.type} for session ${ev.session} lane ${ev.lane}, which is not the healthy session`);
        return;
      }
      this.#onHealthyEvent(core, ev);
      return;
    }
    const run = ctx.run!;
    if (isHealthy) {
      this.#fail('escape', `${this.#name(core)}: hostile input produced event type ${ev.type} code ${ev.code} for the healthy session (session ${ev.session} lane ${ev.lane})`);
      return;
    }
    if (run.core !== core) {
      this.#fail('escape', `hostile input to ${run.name} produced an event on ${this.#name(core)}`);
      return;
    }
    if (ev.session !== 0 && !run.sessions.has(ev.session)) {
      if (ctx.adopt || (ev.lane !== 0 && run.lanes.has(ev.lane))) {
        run.sessions.add(ev.session);
      } else {
        this.#fail('escape', `${run.name}: hostile input produced event type ${ev.type} for session ${ev.session}, not this run's`);
        return;
      }
    }
    let hl = ev.lane !== 0 ? run.lanes.get(ev.lane) : undefined;
    if (ev.lane !== 0 && !hl) {
      if (ev.type === Ev.OPEN_LANE && run.sessions.has(ev.session)) {
        hl = this.#addLane(run, ev.lane);
        const h = ev.lane;
        // The host connects the new lane at once.
        this.#actions.push(() => {
          if (hl!.closed || hl!.down) return;
          const r = this.#input(core, { kind: 'hostile', run, fed: 0, adopt: false }, () => core.laneUp(h, this.now));
          run.log.push({ core: run.name, op: 'laneUp', slot: hl!.slot, result: r });
        });
      } else {
        this.#fail('escape', `${run.name}: hostile input produced event type ${ev.type} code ${ev.code} for lane ${ev.lane}, not this run's`);
        return;
      }
    }
    const slot = hl ? hl.slot : -1;
    run.sig.push(`${ev.type}:${slot}:${ev.code}:${ev.seq}:${ev.hdrLen}:${ev.dataLen}:${ev.flags}`);
    switch (ev.type) {
      case Ev.PROTOCOL_ERROR:
        if (ctx.fed !== 0 && ev.lane !== ctx.fed) {
          this.#fail('escape', `${run.name}: bytes fed on lane ${ctx.fed} caused a protocol error (${codeName(ev.code)}) on lane ${ev.lane}`);
        }
        run.protoErrors.push({ slot, code: ev.code });
        break;
      case Ev.CLOSE_LANE:
        if (!hl) {
          this.#fail('escape', `${run.name}: close-lane without a lane`);
          break;
        }
        hl.closed = true;
        hl.extLeft = 0;
        hl.extWait = false;
        run.closes.push({ slot, code: ev.code });
        this.#actions.push(() => this.#laneDown(run, hl!));
        break;
      case Ev.EXT_RX:
        if (!hl || ev.lane !== ctx.fed) {
          this.#fail('escape', `${run.name}: ext-rx for lane ${ev.lane} while lane ${ctx.fed} was fed`);
          break;
        }
        hl.extLeft = ev.dataLen;
        hl.extWait = true;
        break;
      case Ev.SESSION_REQUEST:
        if (hl) this.#actions.push(() => this.#decide(run, hl!));
        break;
      case Ev.AUTH_REQUEST:
        // The host answers every HELLO with F_AUTH with a CHALLENGE (a nonce of its own).
        if (hl) {
          const isNew = ev.session === 0;
          this.#actions.push(() => {
            if (hl!.closed || hl!.down) return;
            const r = this.#input(core, { kind: 'hostile', run, fed: 0, adopt: true }, () => core.authChallenge(hl!.handle, AUTH_NONCE, this.now));
            run.log.push({ core: run.name, op: 'authChallenge', slot: hl!.slot, result: r });
            if (r < 0) this.#fail('stuck', `authChallenge after auth-request returned ${codeName(-r)}`);
            hl!.authNew = isNew;
          });
        }
        break;
      case Ev.AUTH_PROOF:
        if (hl) this.#actions.push(() => this.#verdict(run, hl!));
        break;
      case Ev.AUTH_CHALLENGE:
        // Client target: the fuzz client proves no key, so its core never asks.
        this.#fail('escape', `${run.name}: auth-challenge on a lane whose HELLO had no F_AUTH`);
        break;
      case Ev.SESSION_OPEN: {
        const info = core.sessionInfo(ev.session);
        if (info) run.R.set(ev.session, info[7]);
        break;
      }
      case Ev.REQUEST:
      case Ev.MESSAGE:
      case Ev.RESPONSE:
        this.#checkDelivery(run, core, ev);
        if (ev.type === Ev.REQUEST && run.script.respond) {
          const s = ev.session, tag = ev.tag, n = ev.dataLen & 0xff;
          this.#actions.push(() => {
            const r = this.#input(core, { kind: 'hostile', run, fed: 0, adopt: false },
              () => core.respond(s, tag, HEALTHY_HDR, n, 0, 0, this.now));
            run.log.push({ core: run.name, op: `respond tag ${tag}`, result: r });
          });
        }
        break;
    }
  }

  #count(m: Map<number, number> | undefined, code: number): void {
    if (m) m.set(code, (m.get(code) ?? 0) + 1);
  }

  #stats: Stats | undefined;

  #checkDelivery(run: RunState, core: Core, ev: CoreEvent): void {
    const mem = core.memoryBytes;
    const ext = ev.ext !== 0;
    const what = `${run.name}: delivered ${ev.type === Ev.REQUEST ? 'request' : ev.type === Ev.MESSAGE ? 'message' : 'response'} seq ${ev.seq}`;
    if (ev.hdrLen > 4096) this.#fail('violation', `${what} has a ${ev.hdrLen}-byte header (limit 4096)`);
    if (!ext && ev.hdrLen + ev.dataLen > 8192) this.#fail('violation', `${what} carries ${ev.hdrLen}+${ev.dataLen} inline bytes (limit 8192)`);
    if (ev.hdrPtr + ev.hdrLen > mem || (!ext && ev.dataPtr + ev.dataLen > mem)) {
      this.#fail('violation', `${what} points past the core's memory`);
    }
    const last = run.lastSeq.get(ev.session);
    if (last !== undefined && ev.seq <= last) this.#fail('violation', `${what} after seq ${last}: not in order`);
    run.lastSeq.set(ev.session, ev.seq);
    if (ev.type !== Ev.RESPONSE) run.delivered++;
    if (ev.type === Ev.REQUEST) {
      const R = run.R.get(ev.session) ?? 0;
      if ((ev.tag & 0xffff) >= R || ev.tag >>> 16 === 0) {
        this.#fail('violation', `${what} has tag 0x${ev.tag.toString(16)}, outside the request table (${R} entries)`);
      }
    }
  }

  #addLane(run: RunState, handle: number): HostileLane {
    const hl: HostileLane = {
      handle, slot: run.slots.length, closed: false, down: false, extLeft: 0, extWait: false, errorsSent: [],
    };
    run.lanes.set(handle, hl);
    run.slots.push(hl);
    return hl;
  }

  #laneDown(run: RunState, hl: HostileLane): void {
    if (hl.down) return;
    hl.down = true;
    const r = this.#input(run.core, { kind: 'hostile', run, fed: 0, adopt: false },
      () => run.core.laneDown(hl.handle, E_TRANSPORT, this.now));
    run.log.push({ core: run.name, op: 'laneDown', slot: hl.slot, result: r });
  }

  /** The host's verdict on a hostile lane's proof: the script says whether it is right. */
  #verdict(run: RunState, hl: HostileLane): void {
    if (hl.closed || hl.down) return;
    const core = run.core;
    const ctx: Ctx = { kind: 'hostile', run, fed: 0, adopt: true };
    if (run.script.auth !== 'pass') {
      const r = this.#input(core, ctx, () => core.reject(hl.handle, AUTH_CODE, '', this.now));
      run.log.push({ core: run.name, op: 'reject auth', slot: hl.slot, result: r });
      if (r < 0) this.#fail('stuck', `reject(auth) after auth-proof returned ${codeName(-r)}`);
      return;
    }
    const r = this.#input(core, ctx, () => core.authPassed(hl.handle, AUTH_PROOF, this.now));
    run.log.push({ core: run.name, op: 'authPassed', slot: hl.slot, result: r });
    if (r < 0) this.#fail('stuck', `authPassed after auth-proof returned ${codeName(-r)}`);
    // A new session is then the host's to decide, as after a session-request.
    if (hl.authNew) this.#decide(run, hl);
  }

  #decide(run: RunState, hl: HostileLane): void {
    if (hl.closed || hl.down) return;
    const core = run.core;
    const ctx: Ctx = { kind: 'hostile', run, fed: 0, adopt: true };
    let r: number;
    switch (run.script.decision) {
      case 'accept':
        r = this.#input(core, ctx, () => core.accept(hl.handle, FUZZ_KEY, ['tcp://portal-a:1', 'tcp://portal-b:2'], Buffer.from('k=v'), this.now));
        if (r < 0) this.#fail('stuck', `srv.accept() returned ${codeName(-r)}: a session leaked?`);
        break;
      case 'reject':
        r = this.#input(core, ctx, () => core.reject(hl.handle, 7, 'go away', this.now));
        break;
      default:
        r = this.#input(core, ctx, () => core.redirect(hl.handle, ['tcp://elsewhere:1/x'], this.now));
    }
    run.log.push({ core: run.name, op: run.script.decision, slot: hl.slot, result: r });
  }

  // ---- the healthy session ----

  #openHealthy(): void {
    this.#handshake = true;
    try {
      const s = this.#input(this.cli, { kind: 'healthy', fed: 0, adopt: false },
        () => this.cli.connect('tcp://healthy:1/h', '/h', Buffer.from('healthy'), 2, this.now));
      if (s < 0) throw new Error(`healthy connect failed: ${codeName(-s)}`);
      this.#hs = s;
      this.#settle();
    } finally {
      this.#handshake = false;
    }
    if (this.#hsSrv <= 0 || this.#hLanes[0].size !== 2) throw new Error('healthy session did not open');
    if (!this.healthyRoundTrip()) throw new Error(`healthy session does not work: ${JSON.stringify(this.#failures)}`);
  }

  /** The healthy client lane cl is being connected: the server accepts its connection. */
  #connectHealthy(cl: number): void {
    const ctx: Ctx = { kind: 'healthy', fed: 0, adopt: false };
    const sl = this.#input(this.srv, ctx, () => this.srv.laneAccepted(this.now));
    this.#hLanes[0].add(cl);
    this.#hLanes[1].add(sl);
    this.#links.get(this.cli)!.set(cl, sl);
    this.#links.get(this.srv)!.set(sl, cl);
    this.#input(this.cli, ctx, () => this.cli.laneUp(cl, this.now));
  }

  #handshake = false;

  #onHealthyEvent(core: Core, ev: CoreEvent): void {
    if (this.#handshake) {
      if (ev.type === Ev.OPEN_LANE && core === this.cli) {
        const cl = ev.lane;
        this.#actions.push(() => this.#connectHealthy(cl));
      } else if (ev.type === Ev.SESSION_REQUEST && core === this.srv) {
        const lane = ev.lane;
        this.#actions.push(() => {
          this.#hsSrv = this.#input(this.srv, { kind: 'healthy', fed: 0, adopt: false },
            () => this.srv.accept(lane, FUZZ_KEY, [], new Uint8Array(0), this.now));
        });
      }
      return;
    }
    switch (ev.type) {
      case Ev.REQUEST:
        if (core === this.srv) {
          const data = Buffer.from(core.view(ev.dataPtr, ev.dataLen));
          const tag = ev.tag, s = ev.session;
          this.#actions.push(() => {
            const r = this.#input(this.srv, { kind: 'healthy', fed: 0, adopt: false },
              () => this.srv.respond(s, tag, HEALTHY_HDR, data, 0, 0, this.now));
            if (r < 0) this.#fail('healthy', `healthy respond returned ${codeName(-r)}`);
          });
        }
        break;
      case Ev.RESPONSE:
        if (core === this.cli) this.#hGot.set(ev.tag, Buffer.from(core.view(ev.dataPtr, ev.dataLen)));
        break;
      case Ev.PROTOCOL_ERROR:
      case Ev.CLOSE_LANE:
      case Ev.LANE_DOWN:
      case Ev.SESSION_LOST:
      case Ev.SESSION_CLOSED:
      case Ev.SESSION_REJECTED:
      case Ev.REQUEST_FAILED:
        this.#fail('healthy', `healthy session on ${this.#name(core)} got event type ${ev.type} code ${codeName(ev.code)} (lane ${ev.lane})`);
        break;
    }
  }

  /** One request/response through the healthy session; true if it came back intact. */
  healthyRoundTrip(): boolean {
    // A trapped core is dead (its trap is already counted): nothing to check.
    if (this.trapped) return false;
    const before = this.#failures.length;
    try {
      this.#hCounter++;
      this.#hData.writeUInt32LE(this.#hCounter, 0);
      this.#hData.writeUInt32LE(this.#hCounter * 2654435761 >>> 0, HEALTHY_DATA - 4);
      const tag = this.#input(this.cli, { kind: 'healthy', fed: 0, adopt: false },
        () => this.cli.request(this.#hs, HEALTHY_HDR, this.#hData, 0, 0, 0, this.now));
      if (tag <= 0) {
        this.#fail('healthy', `healthy request refused: ${codeName(-tag)}`);
        return false;
      }
      this.#hPending.set(tag, Buffer.from(this.#hData));
      this.#settle();
      const got = this.#hGot.get(tag);
      this.#hGot.delete(tag);
      const want = this.#hPending.get(tag)!;
      this.#hPending.delete(tag);
      if (!got) this.#fail('healthy', `healthy request ${tag} got no response`);
      else if (!got.equals(want)) this.#fail('healthy', `healthy request ${tag} got a different response back`);
      else return this.#failures.length === before;
    } catch (e) {
      if (e instanceof CoreTrapError) this.#fail('trap', `trap during the healthy round trip: ${e.message} (in ${trapSite(e)})`);
      else if (!(e instanceof Abort)) throw e;
    }
    return false;
  }

  /** Lets time pass and fires the cores' timers (keepalives on the healthy lanes). */
  tick(us: number): void {
    this.now += us;
    try {
      for (const core of [this.cli, this.srv]) {
        this.#input(core, { kind: 'timer', fed: 0, adopt: false }, () => core.timeout(this.now));
        this.#settle();
      }
    } catch (e) {
      if (e instanceof CoreTrapError) this.#fail('trap', `trap in timeout(): ${e.message} (in ${trapSite(e)})`);
      else if (!(e instanceof Abort)) throw e;
    }
  }

  takeFailures(): Failure[] {
    const f = this.#failures;
    this.#failures = [];
    return f;
  }

  // ---- hostile runs ----

  /**
   * Executes a script once. `split` feeds each step in random pieces (from
   * the step's split seed); otherwise each step goes in one piece.
   * Returns the run's event signature and log.
   */
  execute(script: Script, split: boolean, stats?: Stats): { sig: string[]; fed: Buffer[]; log: LogEntry[]; failures: Failure[] } {
    this.#stats = stats;
    const core = script.side === 'srv' ? this.srv : this.cli;
    const run: RunState = {
      script, core, name: script.side, lanes: new Map(), slots: [], sessions: new Set(), R: new Map(),
      lastSeq: new Map(), delivered: 0, protoErrors: [], closes: [], sig: [], fed: [], view: { sessionId: 0n, tags: [], sent: 0, R: 0 },
      log: [], split,
    };
    this.#run = run;
    const adopt: Ctx = { kind: 'hostile', run, fed: 0, adopt: true };
    const before = this.#failures.length;
    try {
      if (script.side === 'srv') {
        this.#openSrvLane(run);
      } else {
        const s = this.#input(core, adopt, () => core.connect('tcp://hostile:1/f', '/f', Buffer.from('a=b'), script.clientLanes, this.now));
        run.log.push({ core: 'cli', op: `connect lanes=${script.clientLanes}`, result: s });
        if (s < 0) {
          this.#fail('stuck', `cli.connect() returned ${codeName(-s)}: a session leaked?`);
          throw new Abort();
        }
        run.sessions.add(s);
        this.#settle();
      }
      for (const step of script.steps) {
        if (step.k === 'open') {
          if (script.side === 'srv') this.#openSrvLane(run);
          continue;
        }
        if (step.k === 'requests') {
          this.#appRequests(run, step.n);
          continue;
        }
        const hl = run.slots[step.lane];
        if (!hl || hl.closed || hl.down) continue;
        const bytes = typeof step.bytes === 'function' ? step.bytes(run.view) : step.bytes;
        run.fed.push(bytes);
        this.#feed(run, hl, bytes, split ? cuts(bytes.length, step.split) : []);
      }
      this.#checkExpect(run);
      this.#teardown(run);
    } catch (e) {
      if (e instanceof CoreTrapError) {
        this.#fail('trap', `${run.name} trapped: ${e.message} (in ${trapSite(e)})`);
      } else if (!(e instanceof Abort)) {
        throw e;
      }
    }
    this.#run = undefined;
    this.#actions.length = 0;
    return { sig: run.sig, fed: run.fed, log: run.log, failures: this.#failures.slice(before) };
  }

  #openSrvLane(run: RunState): void {
    const core = run.core;
    const h = this.#input(core, { kind: 'hostile', run, fed: 0, adopt: true }, () => core.laneAccepted(this.now));
    run.log.push({ core: 'srv', op: 'laneAccepted', slot: run.slots.length, result: h });
    if (h < 0) {
      this.#fail('stuck', `srv.laneAccepted() returned ${codeName(-h)}: a lane leaked?`);
      throw new Abort();
    }
    this.#addLane(run, h);
  }

  #appRequests(run: RunState, n: number): void {
    const core = run.core;
    for (const s of run.sessions) {
      for (let i = 0; i < n; i++) {
        const r = this.#input(core, { kind: 'hostile', run, fed: 0, adopt: false },
          () => core.request(s, HEALTHY_HDR, this.#hData.subarray(0, i * 7 % 64), 0, 0, 0, this.now));
        run.log.push({ core: run.name, op: 'request', result: r });
        this.#settle();
      }
    }
  }

  #feed(run: RunState, hl: HostileLane, bytes: Buffer, pieces: number[]): void {
    const core = run.core;
    const ctx: Ctx = { kind: 'hostile', run, fed: hl.handle, adopt: false };
    let pos = 0;
    const ends = pieces.concat([bytes.length]);
    // One log line per step: the bytes and where they were cut into rx calls.
    const entry: LogEntry = {
      core: run.name, op: pieces.length ? `rx (cut at ${pieces.length > 40 ? 'every byte' : pieces.join(',')})` : 'rx',
      slot: hl.slot, bytes, result: 0,
    };
    run.log.push(entry);
    for (const end of ends) {
      let zero = 0;
      while (pos < end && !hl.closed && !hl.down) {
        if (hl.extWait) {
          const n = Math.min(hl.extLeft, end - pos);
          pos += n;
          hl.extLeft -= n;
          if (hl.extLeft > 0) break;
          hl.extWait = false;
          const r = this.#input(core, ctx, () => core.extDone(hl.handle, this.now));
          run.log.push({ core: run.name, op: `extDone (after byte ${pos})`, slot: hl.slot, result: r });
          if (r < 0) this.#fail('stuck', `extDone after ext-rx returned ${codeName(-r)}`);
          this.#settle();
          continue;
        }
        const piece = bytes.subarray(pos, end);
        const r = this.#input(core, ctx, () => core.rx(hl.handle, piece, this.now));
        entry.result = pos + Math.max(r, 0);
        if (r < 0) {
          this.#fail('stuck', `rx on live lane ${hl.handle} returned ${codeName(-r)}`);
          throw new Abort();
        }
        if (r > piece.length) this.#fail('violation', `rx consumed ${r} of ${piece.length} bytes`);
        pos += r;
        this.#settle();
        if (r === 0 && !hl.extWait && !hl.closed) {
          if (++zero > 2) {
            this.#fail('stuck', `lane ${hl.handle} takes no bytes and waits for nothing (${piece.length} offered)`);
            throw new Abort();
          }
        } else {
          zero = 0;
        }
      }
      if (pos < end && (hl.closed || hl.down)) return;
    }
    // Zero-length ext payloads cannot exist (the core refuses dataLen 0), so
    // an ext wait at the end of the bytes means the payload is still coming.
  }

  #checkExpect(run: RunState): void {
    const x = run.script.expect;
    if (!x) return;
    const pe = run.protoErrors.find((e) => e.slot === x.lane);
    const cl = run.closes.find((e) => e.slot === x.lane);
    const fmt = (c: number | undefined) => (c === undefined ? 'nothing' : codeName(c));
    if (x.none) {
      for (const e of run.protoErrors) this.#fail('miss', `${run.script.kind}: lane ${e.slot} got protocol error ${codeName(e.code)} for frames that break no rule`);
      for (const e of run.closes) if (!run.protoErrors.length) this.#fail('miss', `${run.script.kind}: lane ${e.slot} closed (${codeName(e.code)}) for frames that break no rule`);
      if (x.delivered !== undefined && run.delivered !== x.delivered) {
        this.#fail('miss', `${run.script.kind}: ${run.delivered} requests and messages delivered, ${x.delivered} sent`);
      }
      return;
    }
    if (x.protocol) {
      if (!pe) this.#fail('miss', `${run.script.kind}: lane ${x.lane} got no protocol error (wanted ${x.protocol.map(codeName).join('|')}; closed: ${fmt(cl?.code)})`);
      else if (!x.protocol.includes(pe.code)) this.#fail('miss', `${run.script.kind}: lane ${x.lane} got protocol error ${codeName(pe.code)}, wanted ${x.protocol.map(codeName).join('|')}`);
    } else if (x.close !== undefined) {
      if (pe) this.#fail('miss', `${run.script.kind}: lane ${x.lane} got protocol error ${codeName(pe.code)}, wanted a close with ${codeName(x.close)}`);
      else if (!cl || cl.code !== x.close) this.#fail('miss', `${run.script.kind}: lane ${x.lane} closed with ${fmt(cl?.code)}, wanted ${codeName(x.close)}`);
    }
    if (pe) {
      // The lane is closed, and the peer was told why before it closed.
      if (!cl) this.#fail('miss', `${run.script.kind}: lane ${x.lane} got protocol error ${codeName(pe.code)} but no close-lane`);
      const hl = run.slots[x.lane];
      if (hl && !hl.errorsSent.includes(pe.code)) {
        this.#fail('miss', `${run.script.kind}: lane ${x.lane} got protocol error ${codeName(pe.code)} but the peer got no ERROR frame with that code (sent: ${hl.errorsSent.join(',') || 'none'})`);
      }
    }
    for (const e of run.protoErrors) {
      if (e.slot !== x.lane) this.#fail('miss', `${run.script.kind}: lane ${e.slot} (not fed bad bytes) got protocol error ${codeName(e.code)}`);
    }
    for (const e of run.closes) {
      if (e.slot !== x.lane) this.#fail('miss', `${run.script.kind}: lane ${e.slot} (not fed bad bytes) was closed (${codeName(e.code)})`);
    }
  }

  #teardown(run: RunState): void {
    const core = run.core;
    // The hostile connections go away; then the host drops the session.
    for (const hl of run.slots) {
      if (!hl.down) {
        this.#laneDown(run, hl);
        this.#settle();
      }
    }
    for (const s of run.sessions) {
      const r = this.#input(core, { kind: 'hostile', run, fed: 0, adopt: false }, () => core.destroy(s, this.now));
      run.log.push({ core: run.name, op: 'destroy', result: r });
      this.#settle();
    }
    for (const hl of run.slots) {
      if (!hl.down) {
        this.#laneDown(run, hl);
        this.#settle();
      }
    }
    if (this.#stats) {
      const protoSlots = new Set(run.protoErrors.map((e) => e.slot));
      for (const c of run.closes) {
        if (!protoSlots.has(c.slot) && c.code !== 0) this.#count(this.#stats.closes, c.code);
      }
    }
  }

  /** Checks memory size and event overflow of both cores. */
  checkCores(): void {
    const m = this.memory;
    if (m[0] !== this.#mem0[0] || m[1] !== this.#mem0[1]) {
      this.#fail('memory', `memory grew: cli ${this.#mem0[0]} -> ${m[0]}, srv ${this.#mem0[1]} -> ${m[1]}`);
      this.#mem0 = m;
    }
    if (this.cli.eventOverflow() !== 0 || this.srv.eventOverflow() !== 0) {
      this.#fail('overflow', `eventOverflow: cli ${this.cli.eventOverflow()}, srv ${this.srv.eventOverflow()}`);
    }
  }

  get trapped(): boolean {
    return this.cli.trapped !== undefined || this.srv.trapped !== undefined;
  }
}

let wasmNames: string[] | undefined;

/**
 * Where a trap happened, as core function names (from build/core.wat when
 * it is there; wasm function indices otherwise).
 */
export function trapSite(e: unknown): string {
  const stack = String((e as { cause?: Error })?.cause?.stack ?? '');
  if (wasmNames === undefined) {
    wasmNames = [];
    try {
      const wat = readFileSync(path.join(__dirname, '..', '..', '..', 'build', 'core.wat'), 'utf8');
      for (const m of wat.matchAll(/^ \(func \$(\S+)/gm)) wasmNames.push(m[1].replace(/^assembly\//, ''));
    } catch {
      // No text file: indices will do.
    }
  }
  const sites = [...stack.matchAll(/wasm-function\[(\d+)\]/g)].map((m) => wasmNames![Number(m[1])] ?? `#${m[1]}`);
  return sites.length ? sites.join(' < ') : 'unknown';
}

/** Cut points for feeding n bytes in pieces: a few random ones, sometimes every byte. */
export function cuts(n: number, seed: number): number[] {
  if (n < 2) return [];
  const r = new Rng(seed, 7);
  const mode = r.int(4);
  const out: number[] = [];
  if (mode === 0 && n <= 256) {
    for (let i = 1; i < n; i++) out.push(i);
    return out;
  }
  const k = mode === 1 ? r.range(1, 3) : r.range(1, Math.min(32, n - 1));
  const set = new Set<number>();
  for (let i = 0; i < k; i++) set.add(r.range(1, n - 1));
  return [...set].sort((a, b) => a - b);
}

/** What the hostile peer learns from bytes the target sent it. */
function learn(v: PeerView, b: Uint8Array, errors: number[]): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  while (p + 8 <= b.length) {
    const t = b[p];
    const len = dv.getUint32(p + 4, true);
    if (t === T.BATCH) { p += BATCH_SIZE; continue; }
    if (len < 8 || p + len > b.length) return;
    if (t === T.ERROR && len >= 16) {
      errors.push(dv.getUint16(p + 8, true));
    } else if (t === T.ACCEPT && len >= ACCEPT_SIZE) {
      v.sessionId = dv.getBigUint64(p + 16, true);
      v.R = dv.getUint32(p + 40, true);
    } else if (isMessage(t) && len >= MSG_HEADER) {
      const seq = Number(dv.getBigUint64(p + 8, true));
      if (seq + 1 > v.sent) v.sent = seq + 1;
      if (t === T.REQUEST) v.tags.push(dv.getUint32(p + 24, true));
    }
    p += len;
  }
}

/** A failure's repro: the inputs of the run, with the hostile bytes in hex. */
export function formatLog(log: LogEntry[]): string {
  return log.map((e) => {
    const slot = e.slot !== undefined ? ` lane#${e.slot}` : '';
    const hex = e.bytes ? ` ${Buffer.from(e.bytes).toString('hex')}` : '';
    return `  ${e.core} ${e.op}${slot}${hex} -> ${e.result}`;
  }).join('\n');
}
