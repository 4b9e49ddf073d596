// A strict TypeScript consumer of the installed package as an ES module (the `import` types of
// package.json "exports"). Compiled by scripts/pack-check.sh with tsconfig.json here:
// strict, and skipLibCheck off, so nexio's own declarations are checked too.
import { connect, createServer, NexioError, Session } from 'nexio';
import type { ConnectOptions, IncomingRequest, Reply, RequestOptions, ServerOptions } from 'nexio';

export async function gettingStarted(): Promise<string> {
  const options: ServerOptions = {
    portals: ['tcp://127.0.0.1:0/kv'],
    handler: async (req: IncomingRequest) => ({ header: req.header, data: Buffer.from(`got ${req.data.length} bytes`) }),
    onMessage: (_session, header: Buffer, data: Buffer) => console.log(header.toString(), data.toString()),
    onSession: (info) => (info.resource === '/kv' ? 'accept' : { reject: 'unknown resource' }),
  };
  const server = await createServer(options);
  const connectOptions: ConnectOptions = { lanes: 2 };
  const session: Session = await connect(server.portals[0], connectOptions);
  const requestOptions: RequestOptions = { timeout: 1000 };
  const reply: Reply = await session.request('get', 'key-1', requestOptions);
  await session.send('log', 'delivered for sure', { receipt: true });
  const ac = new AbortController();
  const p = session.request('slow', '', { signal: ac.signal });
  ac.abort();
  const code = await p.then(() => 'resolved', (e: unknown) => (e instanceof NexioError ? e.code : 'not a NexioError'));
  session.on('drain', () => {});
  await session.close();
  await server.close();
  return `${reply.data.toString()} ${code}`;
}
