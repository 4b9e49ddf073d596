// nexio.register(): application memory registration for rdma:// rendezvous
// sends. Here (tcp:// only, no rdma lane) it registers nothing yet and says
// so; the registration itself is tested on real rxe devices in the lab
// (test/rdma/transport-suite.js, "registered memory").

import t from 'tap';
import { register, Context, connect, createServer } from '../host/index';
import { appRegistrations } from '../host/transports/rdma';

t.test('register() checks its argument with a typed error', async (t) => {
  for (const bad of [undefined, null, 42, 'text', new ArrayBuffer(0), new Uint8Array(0)]) {
    t.throws(() => register(bad as unknown as ArrayBuffer), { code: 'NEXIO_ERR_INVALID_ARG' }, `refuses ${Object.prototype.toString.call(bad)}`);
  }
  t.throws(() => register(new Uint8Array(new SharedArrayBuffer(64))), { code: 'NEXIO_ERR_INVALID_ARG' }, 'refuses shared memory');
});

t.test('without an rdma lane it registers nothing yet; sends from the memory work; release() is idempotent', async (t) => {
  const buf = Buffer.alloc(256 * 1024, 7);
  const reg = register(buf);
  t.same(reg.devices, [], 'no device to register on');
  t.equal(reg.buffer, buf, 'the handle names the memory');
  const ctx = new Context();
  const reg2 = ctx.register(buf.buffer);
  t.same(reg2.devices, [], 'Context.register is the same registry');
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: (req) => String(req.data.length) });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0], { lanes: 1 });
  t.teardown(() => s.destroy());
  t.equal((await s.request('n', buf)).data.toString(), String(buf.length), 'a registered Buffer is sent like any other');
  t.equal(appRegistrations().get(buf.buffer), 2, 'two handles on one ArrayBuffer');
  reg.release();
  reg.release(); // idempotent: must not drop reg2's hold
  t.equal(appRegistrations().get(buf.buffer), 1, 'a second release() of one handle changes nothing');
  reg2.release();
  t.notOk(appRegistrations().has(buf.buffer), 'the last release lets the memory go');
});
