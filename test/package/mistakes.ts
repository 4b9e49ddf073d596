// Mistakes the installed declarations must catch: each marked line must fail to compile, since
// tsc reports an expect-error directive that has no error to expect. So a misspelled event or
// error code, or an internal member, cannot slip through.
import { connect, NexioError } from 'nexio';

export async function mistakes(): Promise<void> {
  const session = await connect('tcp://127.0.0.1:7000/kv');
  // @ts-expect-error: no such event
  session.on('mesage', () => {});
  // @ts-expect-error: internal, not in the published types
  await session.whenOpen();
  // @ts-expect-error: internal, not in the published types
  console.log(session.handle);
  try {
    await session.request('get', 'key-1');
  } catch (e) {
    // @ts-expect-error: no such error code
    if (e instanceof NexioError && e.code === 'NEXIO_ERR_TIMEOT') console.log('timeout');
  }
}
