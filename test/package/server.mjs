// The getting-started server (docs/getting-started.md), ES module, as a consumer of the installed
// package runs it. Port 0: prints the bound portal for client.mjs; SIGTERM closes it.
import { createServer } from 'nexio';

async function main() {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/kv'],
    // Every request: header and data are Buffers; return the reply.
    handler: async (req) => ({ header: req.header, data: Buffer.from(`got ${req.data.length} bytes`) }),
    // One-way messages (session.send).
    onMessage: (session, header, data) => console.log('message', header.toString(), data.toString()),
    // Optional: decide each new session.
    onSession: (info) => (info.resource === '/kv' ? 'accept' : { reject: 'unknown resource' }),
  });
  console.log('listening on', server.portals[0]);
  process.once('SIGTERM', () => server.close());
}
main();
