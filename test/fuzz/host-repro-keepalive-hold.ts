// Repro (host fuzzer: the runs it counts as "cut short"): a peer whose HELLO
// announces a huge keepaliveMs (0xffffffff) and then says nothing keeps its
// lane and its session on the server for ever: the dead-lane time is 3 ×
// the larger of the two keepalives (assembly/handshake.ts setWindows takes
// the peer's value uncapped), so 3 × 49.7 days. maxSessions such peers lock
// every new client out (NEXIO_ERR_LIMIT) for as long as they keep their
// sockets. Not run by tap: `node dist/test/fuzz/host-repro-keepalive-hold.js`.

import { Context } from '../../host/context';
import { serveContext } from '../../host/server';
import { mem } from '../../host/transports/mem';
import * as F from './frames';

async function main(): Promise<void> {
  const ctx = new Context({ core: { keepaliveMs: 100, resumeMs: 200 }, admission: { lingerMs: 10 } });
  serveContext(ctx, (req) => req.data, undefined, () => ({ accept: true }));
  const portal = await ctx.listen('mem://repro-keepalive-hold/svc');
  const peers = [];
  for (const ka of [100, 0xffffffff]) {
    const p = mem.rawDial(portal);
    const t0 = Date.now();
    const st = { ka, fin: -1 };
    p.ondata = () => undefined;
    p.onend = () => { st.fin = Date.now() - t0; }; // and we keep our side open
    p.write(F.hello({ keepaliveMs: ka }));
    peers.push({ p, st });
  }
  await new Promise((r) => setTimeout(r, 3000));
  for (const { st } of peers) {
    console.log(`keepaliveMs ${st.ka}: ${st.fin >= 0 ? `let go after ${st.fin} ms` : 'still held after 3000 ms (the server keepalive is 100 ms: dead after 300 ms)'}`);
  }
  console.log('usage:', JSON.stringify(ctx.usage()));
  await ctx.close();
}

void main();
