// Repro (host fuzzer, seed 4 run 7794): a peer sends a REQUEST whose
// response is an EXT payload, then CLOSE, and leaves without acking the
// response. The server Session ends at the CLOSE (SESSION_CLOSED with a
// code: the Context keeps our unacked payloads for a resend), but nothing
// releases them once the session is gone: usage() keeps txPayloads 1 with
// no session left, until the context closes. Not run by tap:
// `node dist/test/fuzz/host-repro-close-ext.js`.

import { Context } from '../../host/context';
import { serveContext } from '../../host/server';
import { mem } from '../../host/transports/mem';
import * as F from './frames';

async function main(): Promise<void> {
  const ctx = new Context({ core: { keepaliveMs: 100, resumeMs: 200 }, admission: { lingerMs: 10 } });
  serveContext(ctx, (req) => ({ data: req.data }), undefined, () => ({ accept: true }));
  const portal = await ctx.listen('mem://repro-close-ext/svc');
  const p = mem.rawDial(portal);
  p.ondata = () => undefined;
  p.write(F.hello({ keepaliveMs: 100 }));
  await new Promise((r) => setTimeout(r, 20));
  // A request with a 20000-byte EXT payload (the echo is an EXT response), then CLOSE.
  const len = 20000;
  p.write(Buffer.concat([
    F.message({ type: F.T.REQUEST, seq: 0, slot: 0, tag: 0x10000, extLen: len }), Buffer.alloc(len, 7),
    F.message({ type: F.T.CLOSE, seq: 1, slot: 32 }),
  ]));
  await new Promise((r) => setTimeout(r, 20));
  console.log('answered, CLOSE delivered:', JSON.stringify(ctx.usage()));
  p.end();
  await new Promise((r) => setTimeout(r, 1000));
  const u = ctx.usage();
  console.log('1 s after the peer left:   ', JSON.stringify(u));
  console.log(u.sessions === 0 && u.txPayloads !== 0
    ? `LEAK: no session left, ${u.txPayloads} outgoing payload(s) still held` : 'ok: nothing held');
  await ctx.close();
}

void main();
