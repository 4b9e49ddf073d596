// rdma:// portal options that need no device: the completion polling mode
// from the URI's `poll` parameter (host/transports/rdma.ts pollOptions; the
// modes themselves run in the lab: test/rdma/verbs-suite.js).

import t from 'tap';
import { pollOptions } from '../host/transports/rdma';
import { NexioError } from '../host/errors';

t.test('poll=adaptive (the default), event, spin:N; anything else is NEXIO_ERR_INVALID_ARG naming the choices', async (t) => {
  const o = (q: string) => pollOptions(new URL(`rdma://10.0.0.1:7000/svc${q}`));
  t.match(o(''), { spinUs: 50, adaptive: true }, 'default: adaptive, 50 µs ceiling');
  t.match(o('?poll=adaptive'), { spinUs: 50, adaptive: true });
  t.equal(o('?poll=event').spinUs, undefined, 'event: no spin');
  t.match(o('?poll=spin:20'), { spinUs: 20 });
  t.equal(o('?poll=spin:20').adaptive, undefined, 'spin:N is fixed, not adaptive');
  for (const bad of ['?poll=spin:0', '?poll=spin:100001', '?poll=spin:-1', '?poll=fast', '?poll=spin:1.5']) {
    const e = (() => { try { o(bad); return undefined; } catch (x) { return x as NexioError; } })();
    t.equal(e?.code, 'NEXIO_ERR_INVALID_ARG', `${bad} is refused`);
    t.match(e?.message ?? '', /adaptive, event or spin:N/, 'naming what it accepts');
  }
});
