// What a consumer writes: all of it must compile (strict, no skipLibCheck).
import {
  connect, createServer, Code, NexioError, RejectedError, TransportError, InvalidArgumentError, RemoteError,
  channels,
} from 'nexio';
import type {
  ConnectOptions, ServerOptions, CloseOptions, ServerCloseOptions, RequestOptions, SendOptions, AdmissionOptions,
  CoreConfig, ContextOptions, ErrorCode, SessionState, SessionEvents, ServerEvents, ServerStats, ContextStats,
  SessionStats, Reply, Handler, HandlerResult, IncomingRequest, Decision, Balance, LaneMessage, SessionMessage,
  ContextMessage, Session, Server,
} from 'nexio';

export async function main(): Promise<void> {
  const core: Partial<CoreConfig> = { maxSessions: 16 };
  const admission: AdmissionOptions = { handshakeMs: 1000 };
  const handler: Handler = (req: IncomingRequest): HandlerResult => ({ header: req.header, data: 'ok' });
  const decide = (): Decision => ({ reject: 'go away' });
  const balance: Balance = 'hash';
  const so: ServerOptions = { portals: ['mem://types/svc'], handler, core, admission, balance, onSession: decide };
  const server: Server = await createServer(so);
  server.on('session', (s: Session) => { s.on('message', (h: Buffer, d: Buffer) => void [h, d]); });
  server.once('close', () => undefined);
  const st: ServerStats = await server.stats();
  const c: ContextStats = st.contexts[0];
  const n: number = st.totals.requestsReceived + c.protocolErrors;

  const co: ConnectOptions = { timeout: 1000, lanes: 1, credits: { messages: 64 } };
  const s = await connect('mem://types/svc', co);
  const state: SessionState = s.state;
  if (state === 'resuming') return;
  s.on('close', (err?: Error) => void err);
  s.on('lane-down', (lane: number, code: number) => void (lane + code));
  s.once('protocol-error', (e, lane) => void [e.code, lane]);
  s.on('drain', () => undefined);
  s.off('receipt', (seq: number) => void seq);
  const ro: RequestOptions = { timeout: 100, signal: AbortSignal.timeout(1000) };
  const r: Reply = await s.request('h', 'd', ro);
  void r.data.length;
  const sendo: SendOptions = { receipt: true };
  await s.send(undefined, 'x', sendo);
  const stats: SessionStats = s.stats();
  void stats.messagesDropped;
  const cl: CloseOptions = { timeout: 10 };
  await s.close(cl);
  const scl: ServerCloseOptions = { timeout: 10 };
  await server.close(scl);

  try {
    await connect('tcp://127.0.0.1:1/x');
  } catch (e) {
    if (e instanceof NexioError) {
      const code: ErrorCode = e.code;
      if (code === 'NEXIO_ERR_TRANSPORT' || code === 'NEXIO_ERR_TIMEOUT') void e.cause;
      if (e.wire === Code.TRANSPORT) void 0;
    }
    if (e instanceof RejectedError) void [e.reason, e.message];
    if (e instanceof TransportError || e instanceof InvalidArgumentError || e instanceof RemoteError) void e.code;
  }
  const ev: keyof SessionEvents = 'message';
  const sev: keyof ServerEvents = 'session';
  const copts: ContextOptions = { views: true };
  const lm = (m: LaneMessage | SessionMessage | ContextMessage) => m.event;
  channels.lane.subscribe((m) => void lm(m as LaneMessage));
  void [n, ev, sev, copts];
}
