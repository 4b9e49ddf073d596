// Core bug found by the fuzzer (not run by tap; run it with
// `node dist/test/fuzz/repro-response-tag.js`). Fails against the core up
// to commit 1c50484; passes from 59676d7 on (the frame is dropped, as
// protocol.md section 18 says of unknown RESPONSE tags; the fuzzer's
// response-unknown-tag case checks that).
//
// A RESPONSE frame whose tag index is outside the session's request table
// makes the core read past the table: onMessageHeader range-checks the tag
// of REQUEST and CANCEL only, and deliver() (assembly/deliver.ts, the
// T_RESPONSE branch) loads pendEntry(s, tag & 0xffff) BEFORE it tests
// `(tag & 0xffff) < s.R`. The index reaches 65535 x 16 bytes = 1 MiB past
// the table; for a session whose table lies within 1 MiB of the end of
// memory the load traps, and a trapped core is dead: every session of the
// context goes with it. With the default config (64 sessions, 256 KiB
// windows) that is the last session slot, which a peer reaches by opening
// sessions until it gets it. One 32-byte frame after a valid handshake:
//
//   110000002000000000000000000000000000000000000000ffff010000000000
//   (RESPONSE, frameLen 32, seq 0, slot 0, dataLen 0, tag 0x0001ffff)
//
// Expected: an unmatched response is dropped (what deliver() does for a
// tag in range that matches nothing); never a trap.

import t from 'tap';
import { CoreTrapError } from '../../host/errors';
import { defaultConfig } from '../../host/core';
import * as F from './frames';
import { Target } from './target';

const response = F.message({ type: F.T.RESPONSE, seq: 0, slot: 0, tag: 0x0001ffff });

t.test('a RESPONSE with an out-of-range tag does not trap (small core)', (t) => {
  const x = new Target({ maxSessions: 1, maxLanes: 4, windowMsgs: 16, windowBytes: 32768, maxRequests: 16 });
  t.equal(response.toString('hex'), '110000002000000000000000000000000000000000000000ffff010000000000');
  let trap: unknown;
  try {
    x.rx(response);
    // The session goes on: the next message is delivered.
    x.rx(F.message({ type: F.T.ONEWAY, seq: 1, slot: 64, data: Buffer.from('after') }));
  } catch (e) {
    trap = e;
  }
  t.notOk(trap instanceof CoreTrapError, `no trap (${(trap as Error)?.message ?? 'none'})`);
  t.end();
});

t.test('the same frame against the last session slot of the default config', (t) => {
  const x = new Target({ ...defaultConfig });
  let trap: unknown;
  try {
    // Sessions take slots round-robin: the peer opens sessions until it
    // holds the last one, whose tables end near the end of memory.
    let last = { lane: x.lane, session: x.session };
    for (let i = 1; i < defaultConfig.maxSessions; i++) last = x.openAnother();
    t.ok(last.session > 0, 'the last session slot is open');
    x.rx(response, last.lane);
  } catch (e) {
    trap = e;
  }
  t.notOk(trap instanceof CoreTrapError, `no trap (${(trap as Error)?.message ?? 'none'})`);
  t.end();
});
