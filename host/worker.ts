// A server context on a worker thread: loads the handler module itself,
// binds its portals, and asks the main thread to decide new sessions.
import { parentPort, workerData } from 'node:worker_threads';
import { Context, SessionDecision } from './context';
import { serveContext, loadHandler } from './server';

interface Data { index: number; portals: string[]; advertise?: string[]; handler?: string; core?: object }

async function main(): Promise<void> {
  const d = workerData as Data;
  const port = parentPort!;
  const ctx = new Context({ core: d.core });
  const { handler, onMessage } = d.handler ? loadHandler(d.handler) : { handler: undefined, onMessage: undefined };
  const waiting = new Map<number, (x: SessionDecision) => void>();
  let next = 1;
  const sessions = serveContext(ctx, handler, onMessage, (info) => new Promise<SessionDecision>((resolve) => {
    const id = next++;
    waiting.set(id, resolve);
    port.postMessage({ type: 'session', id, info: { ...info, attrs: new Uint8Array(info.attrs) } });
  }));
  port.on('message', async (m: { type: string; id?: number; decision?: SessionDecision }) => {
    if (m.type === 'decision') {
      const r = waiting.get(m.id!);
      waiting.delete(m.id!);
      if (r) r(m.decision!.hasOwnProperty('accept') ? { accept: true } : m.decision!);
    } else if (m.type === 'close') {
      await Promise.all([...sessions].map((s) => s.destroy()));
      await ctx.close();
      port.close();
    }
  });
  const bound: string[] = [];
  for (let i = 0; i < d.portals.length; i++) bound.push(await ctx.listen(d.portals[i], d.advertise?.[i]));
  port.postMessage({ type: 'ready', portals: bound });
}

main().catch((e) => parentPort!.postMessage({ type: 'failed', error: String(e?.stack ?? e) }));
