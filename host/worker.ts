// A server context on a worker thread: loads the handler module itself,
// binds its portals, and asks the main thread to decide new sessions.
import { parentPort, workerData } from 'node:worker_threads';
import { Context, SessionDecision, AdmissionOptions } from './context';
import { serveContext, loadHandler, closeContext, contextStats, checkHandlers } from './server';
import type { Handlers } from './server';

interface Data {
  index: number; portals: string[]; advertise?: string[]; handler?: string; core?: object; views?: boolean; admission?: AdmissionOptions;
  tls?: object; psk?: Record<string, Uint8Array>;
}

async function main(): Promise<void> {
  const d = workerData as Data;
  const port = parentPort!;
  const handlers: Handlers = d.handler ? loadHandler(d.handler) : {};
  checkHandlers(`handler module ${d.handler}`, handlers, d.views);
  const ctx = new Context({ core: { ...d.core, refuseOneway: !handlers.onMessage && !handlers.hotMessage }, views: d.views, admission: d.admission });
  const waiting = new Map<number, (x: SessionDecision) => void>();
  let next = 1;
  const sessions = serveContext(ctx, handlers, (info) => new Promise<SessionDecision>((resolve) => {
    const id = next++;
    waiting.set(id, resolve);
    port.postMessage({ type: 'session', id, info: { ...info, attrs: new Uint8Array(info.attrs) } });
  }));
  if (d.psk) ctx.setPsk(d.psk);
  port.on('message', async (m: { type: string; id?: number; decision?: SessionDecision; timeout?: number }) => {
    if (m.type === 'decision') {
      const r = waiting.get(m.id!);
      waiting.delete(m.id!);
      if (r) r(m.decision!); // accept attrs arrive as a Uint8Array (structured clone)
    } else if (m.type === 'stats') {
      port.postMessage({ type: 'stats', id: m.id, stats: contextStats(d.index, ctx, sessions) });
    } else if (m.type === 'close') {
      await closeContext(ctx, sessions, m.timeout ?? 5000);
      port.close();
    }
  });
  const bound: string[] = [];
  for (let i = 0; i < d.portals.length; i++) bound.push(await ctx.listen(d.portals[i], d.advertise?.[i], d.tls ? { tls: d.tls } : undefined));
  port.postMessage({ type: 'ready', portals: bound });
}

main().catch((e) => parentPort!.postMessage({ type: 'failed', error: String(e?.stack ?? e) }));
