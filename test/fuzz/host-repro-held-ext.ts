// Repro (host fuzzer, seed 1 run 303): an EXT payload that arrived in full
// for a message held out of order (a sequence number missing before it)
// stays in the server Context's received payloads after its session is
// lost: usage() keeps rxPayloads 1 and rxBytes = the payload until the
// context closes. Not run by tap: `node dist/test/fuzz/host-repro-held-ext.js`.

import { Context } from '../../host/context';
import { serveContext } from '../../host/server';
import { mem } from '../../host/transports/mem';
import * as F from './frames';

async function main(): Promise<void> {
  const ctx = new Context({ core: { keepaliveMs: 100, resumeMs: 200 }, admission: { lingerMs: 10 } });
  serveContext(ctx, (req) => req.data, undefined, () => ({ accept: true }));
  const portal = await ctx.listen('mem://repro-held-ext/svc');
  const p = mem.rawDial(portal);
  p.ondata = () => undefined;
  p.write(F.hello({ keepaliveMs: 100 }));
  await new Promise((r) => setTimeout(r, 20));
  // seq 0 is never sent; seq 1 (slot 32: after a 32-byte seq 0) is an EXT ONEWAY, payload in full.
  const len = 20000;
  p.write(Buffer.concat([F.message({ type: F.T.ONEWAY, seq: 1, slot: 32, extLen: len }), Buffer.alloc(len, 7)]));
  await new Promise((r) => setTimeout(r, 20));
  console.log('payload in, seq 0 missing:', JSON.stringify(ctx.usage()));
  p.destroy();
  await new Promise((r) => setTimeout(r, 1000)); // the lane is gone, the session lost after resumeMs
  const u = ctx.usage();
  console.log('1 s after the peer left:  ', JSON.stringify(u));
  console.log(u.sessions === 0 && (u.rxPayloads !== 0 || u.rxBytes !== 0)
    ? `LEAK: the session is gone, its payload is still held (${u.rxBytes} bytes)` : 'ok: nothing held');
  await ctx.close();
}

void main();
