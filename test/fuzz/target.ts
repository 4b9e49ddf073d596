// A server core with one session opened by hand-built frames: the starting
// point of the repro files (repro-*.ts) and small fuzz experiments.

import { Core, CoreEvent, CoreConfig, Ev } from '../../host/core';
import * as F from './frames';

export interface Delivered {
  type: number;
  seq: number;
  tag: number;
  hdrLen: number;
  dataLen: number;
  /** A copy of the inline data (empty for EXT). */
  data: Buffer;
}

export class Target {
  readonly core: Core;
  readonly lane: number;
  readonly session: number;
  now = 1_000_000;
  readonly delivered: Delivered[] = [];
  readonly protocolErrors: { lane: number; code: number }[] = [];
  readonly closed: { lane: number; code: number }[] = [];
  #ev = new CoreEvent();

  /** A server core, a hostile connection to it, HELLO, accept(). */
  constructor(config: Partial<CoreConfig>, hello: F.HelloFields = {}) {
    this.core = new Core(config);
    this.lane = this.core.laneAccepted(this.now);
    this.core.rx(this.lane, F.hello(hello), this.now);
    let asked = false;
    this.drain((e) => { if (e.type === Ev.SESSION_REQUEST) asked = true; });
    if (!asked) throw new Error('no session request');
    this.session = this.core.accept(this.lane, F.FUZZ_KEY, [], new Uint8Array(0), this.now);
    if (this.session < 0) throw new Error(`accept: ${this.session}`);
    this.drain();
  }

  /** Another session on the same core (a new connection, HELLO, accept). */
  openAnother(): { lane: number; session: number } {
    const lane = this.core.laneAccepted(this.now);
    this.core.rx(lane, F.hello(), this.now);
    this.drain();
    const session = this.core.accept(lane, F.FUZZ_KEY, [], new Uint8Array(0), this.now);
    this.drain();
    return { lane, session };
  }

  /** Feeds bytes on a lane (the hostile one by default); drains events and transmits. */
  rx(bytes: Uint8Array, lane = this.lane): number {
    let pos = 0;
    while (pos < bytes.length) {
      const r = this.core.rx(lane, bytes.subarray(pos), this.now);
      this.drain();
      if (r <= 0) break;
      pos += r;
    }
    return pos;
  }

  drain(each?: (e: CoreEvent) => void): void {
    const n = this.core.pollEvents();
    for (let i = 0; i < n; i++) {
      const e = this.core.event(i, this.#ev);
      if (e.type === Ev.REQUEST || e.type === Ev.MESSAGE || e.type === Ev.RESPONSE) {
        const data = e.ext === 0 && e.dataLen <= 65536 ? this.core.copy(e.dataPtr, e.dataLen) : Buffer.alloc(0);
        this.delivered.push({ type: e.type, seq: e.seq, tag: e.tag, hdrLen: e.hdrLen, dataLen: e.dataLen, data });
      } else if (e.type === Ev.PROTOCOL_ERROR) {
        this.protocolErrors.push({ lane: e.lane, code: e.code });
      } else if (e.type === Ev.CLOSE_LANE) {
        this.closed.push({ lane: e.lane, code: e.code });
      }
      each?.(e);
    }
    while (this.core.pollTransmit(this.now) !== 0) { /* the hostile peer ignores what we send */ }
  }
}
