// Hand-written scenarios for the targeted tests: one server, clients with
// fixed latency, a calm network (no random splits, coalescing or
// duplicates), an immediate responder; the test adds ops, faults and a
// script of its own.

import { Scenario, ClientSpec, OpSpec, simTimers, MS } from './scenario';

export { MS };

export function op(at: number, kind: OpSpec['kind'], o: Partial<OpSpec> = {}): OpSpec {
  return { at, kind, size: 16, receipt: false, timeoutMs: 0, cancelAfterUs: -1, ...o };
}

export function client(o: Partial<ClientSpec> = {}): ClientSpec {
  return {
    config: { ...simTimers, maxSessions: 4, maxLanes: 16, windowMsgs: 64, windowBytes: 65536, maxRequests: 16, eventCap: 1024 },
    lanes: 1, latencyUs: 1000, startAt: 0, ops: [], admission: { lingerMs: 500 }, ...o,
  };
}

export function scripted(o: Partial<Scenario> & { clients: ClientSpec[] }): Scenario {
  const activeUntil = o.activeUntil ?? 1000 * MS;
  const closeAt = o.closeAt ?? activeUntil + 300 * MS;
  return {
    seed: 1,
    server: {
      config: { ...simTimers, maxSessions: 8, maxLanes: 32, windowMsgs: 64, windowBytes: 65536, maxRequests: 16, eventCap: 1024 },
      admission: { lingerMs: 500 },
    },
    faults: [],
    net: { splitP: 0, coalesceP: 0, dupP: 0 },
    responder: { immediateP: 1, maxDelayUs: 0, slowP: 0, slowMaxUs: 0, extP: 0, errorP: 0, maxSize: 16, rejectP: 0 },
    activeUntil,
    closeAt,
    endAt: closeAt + 4000 * MS,
    ...o,
  };
}
