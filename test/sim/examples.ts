// Targeted scenarios, written by hand: each sets up one situation the
// protocol and the host must survive, for test/sim.test.ts, and three of
// them are the recordings committed in test/replays/
// (`npm run sim -- --write-examples`).

import { Scenario, RunOptions } from './scenario';
import { scripted, client, op, MS } from './scripted';
import { hasResend, Link } from './net';

export interface Example {
  scenario: Scenario;
  options: RunOptions;
  /** What the script saw, for the test's checks. */
  seen: { killed?: Link; inFlight?: number; a?: Link; b?: Link; resendOn?: Link };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A lane dies with messages in flight on it: they go again on the other lane. */
export function failover(): Example {
  const seen: Example['seen'] = {};
  const scenario = scripted({
    clients: [client({ lanes: 2, latencyUs: 5 * MS, ops: range(20).map((i) => op(100 * MS, 'ow', { size: 100 + i })) })],
    activeUntil: 400 * MS,
  });
  return {
    scenario, seen,
    options: {
      script: ({ net, world }) => {
        net.fixedLatency = true;
        world.clock.at(101 * MS, () => {
          const l = net.links.find((x) => x.open && !x.c2s.empty);
          if (!l) return;
          seen.killed = l;
          seen.inFlight = l.c2s.inFlight;
          net.kill(l);
        });
      },
    },
  };
}

/** Every lane dies while responses are being made: the session resumes and they arrive. */
export function resume(): Example {
  const scenario = scripted({
    clients: [client({ lanes: 2, latencyUs: 5 * MS, ops: range(10).map(() => op(100 * MS, 'req', { size: 64 })) })],
    faults: [{ at: 110 * MS, kind: 'killAll', client: 0 }],
    activeUntil: 400 * MS,
  });
  scenario.responder = { ...scenario.responder, immediateP: 0, minDelayUs: 30 * MS, maxDelayUs: 30 * MS };
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/**
 * The server restarts (its context closed) while requests are pending: the
 * resume is refused (unknown session), the requests fail with the session,
 * a new session carries on.
 */
export function sessionLost(): Example {
  const scenario = scripted({
    clients: [client({
      lanes: 1, latencyUs: 2 * MS,
      ops: [...range(5).map(() => op(100 * MS, 'req', { size: 32 })), ...range(3).map(() => op(600 * MS, 'req', { size: 32 }))],
    })],
    faults: [{ at: 200 * MS, kind: 'restart', downUs: 50 * MS }],
    activeUntil: 800 * MS,
  });
  scenario.responder = { ...scenario.responder, immediateP: 0, minDelayUs: 300 * MS, maxDelayUs: 300 * MS };
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/** The server closes gracefully with requests in flight: they are answered, then the session ends closed by the peer. */
export function serverClose(): Example {
  const scenario = scripted({
    clients: [client({ lanes: 2, latencyUs: 2 * MS, ops: range(6).map(() => op(100 * MS, 'req', { size: 32 })) })],
    faults: [{ at: 110 * MS, kind: 'restart', downUs: 100 * MS, graceful: true, closeMs: 5000 }],
    activeUntil: 400 * MS,
  });
  scenario.responder = { ...scenario.responder, immediateP: 0, minDelayUs: 50 * MS, maxDelayUs: 50 * MS };
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/**
 * The client process closes its Context with requests pending: they reject
 * with it at once, the context holds nothing, and a new context carries on.
 */
export function contextClose(): Example {
  const scenario = scripted({
    clients: [client({
      lanes: 2, latencyUs: 2 * MS,
      ops: [...range(5).map(() => op(100 * MS, 'req', { size: 32 })), ...range(3).map(() => op(500 * MS, 'req', { size: 32 }))],
    })],
    faults: [{ at: 110 * MS, kind: 'ctxClose', client: 0 }],
    activeUntil: 800 * MS,
  });
  scenario.responder = { ...scenario.responder, immediateP: 0, minDelayUs: 100 * MS, maxDelayUs: 100 * MS };
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/**
 * Views on both sides (zero-copy receive), inline and ext messages,
 * receipts, releases now or a few ms later: everything arrives once and
 * every lent message goes back.
 */
export function views(): Example {
  const c = client({
    lanes: 2, latencyUs: 2 * MS, views: true, releaseMaxUs: 5 * MS,
    ops: range(30).map((i) => op((100 + i) * MS, i % 2 ? 'req' : 'ow', { size: i % 5 === 0 ? 20000 : 100 + i, receipt: i % 3 === 0 })),
  });
  const scenario = scripted({ clients: [c], activeUntil: 400 * MS });
  scenario.server = { ...scenario.server, views: true };
  scenario.responder = { ...scenario.responder, immediateP: 0.5, maxDelayUs: 10 * MS, extP: 0.3, maxSize: 1000, releaseMaxUs: 5 * MS };
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/** The requester aborts: no response is delivered, and the responder's signal is aborted. */
export function cancel(): Example {
  const scenario = scripted({
    clients: [client({ ops: [op(100 * MS, 'req', { cancelAfterUs: 20 * MS })] })],
  });
  scenario.responder = { ...scenario.responder, immediateP: 0, minDelayUs: 100 * MS, maxDelayUs: 100 * MS };
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/** The request times out: one outcome, and the late response is not delivered. */
export function timeout(): Example {
  const scenario = scripted({
    clients: [client({ ops: [op(100 * MS, 'req', { timeoutMs: 50 })] })],
  });
  scenario.responder = { ...scenario.responder, immediateP: 0, minDelayUs: 200 * MS, maxDelayUs: 200 * MS };
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/** More hot-path sends at once than the window: trySend says no, 'drain' comes, then the rest. */
export function backpressure(): Example {
  const c = client({ latencyUs: 3 * MS, ops: range(40).map(() => op(100 * MS, 'ow', { size: 200, hot: true })) });
  c.config = { ...c.config, windowMsgs: 16 };
  const scenario = scripted({ clients: [c] });
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/**
 * The application closes while every lane is down (a partition holds what
 * was sent): the close must wait for the session to resume and deliver it.
 */
export function closeWhileResuming(): Example {
  const scenario = scripted({
    clients: [client({ ops: [...range(10).map(() => op(100 * MS, 'ow', { size: 50 })), op(400 * MS, 'cycle')] })],
    faults: [{ at: 100.5 * MS, kind: 'partition', client: 0, until: 700 * MS }],
    activeUntil: 300 * MS,
  });
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/**
 * An EXT request whose header arrives, then a partition holds its payload:
 * the server's keepalive closes the lane mid payload; the request must come
 * again on the resumed session and be delivered once.
 */
export function extMidPayload(): Example {
  const scenario = scripted({
    clients: [client({ ops: [op(100 * MS, 'req', { size: 60000 })] })],
    faults: [{ at: 101.5 * MS, kind: 'partition', client: 0, until: 600 * MS }],
  });
  return {
    scenario, seen: {},
    options: {
      script: ({ net }) => {
        net.fixedLatency = true;
        net.cutter = (_link, fromClient, bytes) => (fromClient && bytes.length > 10000 ? [{ at: 2000, gapUs: 1000 }] : undefined);
      },
    },
  };
}

/** Duplicates on every delivery, three lanes, a mixed load: all suppressed. */
export function duplicates(): Example {
  const ops = range(60).map((i) => op((100 + i * 5) * MS, i % 3 ? 'ow' : 'req', { size: 40 + i, receipt: i % 4 === 0 }));
  const scenario = scripted({ clients: [client({ lanes: 3, latencyUs: 4 * MS, ops })], activeUntil: 500 * MS });
  scenario.net = { splitP: 0.5, coalesceP: 0.5, dupP: 1 };
  return { scenario, seen: {}, options: {} };
}

/** The recordings committed in test/replays/, by name. */
export const recorded: Record<string, () => Example> = { failover, resume, 'session-lost': sessionLost };

/**
 * The server's end of a lane never hears that it died (half-open): the ACK
 * for the client's CLOSE goes out on it and is lost. The server must say it
 * again on the other lane when it finds the lane dead, or the close never
 * completes.
 */
export function ackOnDeadLane(): Example {
  const scenario = scripted({
    clients: [client({ lanes: 1, ops: [op(100 * MS, 'ow'), op(260 * MS, 'ow'), op(300 * MS, 'ow'), op(300 * MS, 'cycle')] })],
    faults: [{ at: 210 * MS, kind: 'kill', client: 0, deaf: 'server' }],
    activeUntil: 250 * MS,
  });
  return { scenario, seen: {}, options: { script: ({ net }) => { net.fixedLatency = true; } } };
}

/**
 * One request slot, cancelled requests, two lanes of very different
 * latency: the ACK that frees a cancelled request's slot (it covers the
 * CANCEL) overtakes the response on the slow lane, the slot is reused, and
 * the old response arrives for the new generation of the tag. It must be
 * dropped, and the new request must get its own response.
 */
export function slotReuse(): Example {
  const c = client({
    lanes: 2, latencyUs: 2 * MS,
    ops: range(12).map((i) => op((100 + i * 0.5) * MS, 'req', { size: 32, cancelAfterUs: i % 3 === 2 ? -1 : 3 * MS })),
  });
  c.config = { ...c.config, maxRequests: 1 };
  const scenario = scripted({ clients: [c], activeUntil: 600 * MS });
  return {
    scenario, seen: {},
    options: { script: ({ net }) => { net.linkLatency = (n) => (n === 1 ? 40 * MS : 1 * MS); } },
  };
}

/**
 * A RESEND lost with its lane. Three lanes. An EXT message's header reaches
 * the server on lane A, then A dies, the server's end never told
 * (half-open); the client sends the message again on lane B, which the
 * server skips as a duplicate of the copy still arriving on A. When the
 * server's keepalive finds A dead it asks for the message again (ACK with
 * RESEND), and that ACK goes out on lane C, which dies too. The ask must be
 * repeated, or the message never comes (B is alive: the client sees no
 * reason to send it again) and the session stalls.
 */
export function resendLost(): Example {
  const seen: Example['seen'] = {};
  const scenario = scripted({
    clients: [client({ lanes: 3, ops: [op(100 * MS, 'ow', { size: 60000 }), op(600 * MS, 'ow')] })],
    activeUntil: 700 * MS,
  });
  return {
    scenario, seen,
    options: {
      script: ({ net, world }) => {
        net.fixedLatency = true;
        net.cutter = (link, fromClient, bytes) => {
          if (fromClient && bytes.length > 10000) {
            if (!seen.a) {
              // The first copy: its header and a little payload, then A dies.
              seen.a = link;
              world.clock.after(1500, () => net.kill(link, true, 'server'));
              return [{ at: 2000, gapUs: 1000 }];
            }
            seen.b ??= link;
          }
          if (!fromClient && hasResend(bytes) && !seen.resendOn) {
            seen.resendOn = link;
            if (link !== seen.b) world.clock.after(0, () => net.kill(link));
          }
          return undefined;
        };
      },
    },
  };
}
