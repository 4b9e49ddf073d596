// Mistakes the types must catch: each line below a @ts-expect-error must
// fail to compile. If one compiles, tsc reports the unused directive and
// the type test fails.
import { connect, createServer, NexioError, Code } from 'nexio';

export async function mistakes(): Promise<void> {
  const s = await connect('mem://types/svc');
  // @ts-expect-error a misspelled event
  s.on('mesage', () => undefined);
  // @ts-expect-error a wrong listener signature ('message' gives Buffers)
  s.on('message', (h: string) => void h);
  // @ts-expect-error 'close' gives an Error, not a number
  s.once('close', (code: number) => void code);
  // @ts-expect-error emit with the wrong arguments
  s.emit('receipt', 'seq');
  // @ts-expect-error not a state
  if (s.state === 'opened') return;
  // @ts-expect-error the context's callbacks are not public
  s.onOpen(0, Buffer.alloc(0), 0n);
  // @ts-expect-error the context's callbacks are not public
  s.onRequest;
  // @ts-expect-error unknown option
  await connect('mem://types/svc', { timout: 5 });
  // @ts-expect-error wrong type
  await s.request('h', 'd', { timeout: '5' });

  const server = await createServer({ portals: ['mem://types/svc'] });
  // @ts-expect-error a misspelled server event
  server.on('sesion', () => undefined);
  // @ts-expect-error a server's 'session' gives a Session
  server.on('session', (s: string) => void s);

  try {
    await s.request();
  } catch (e) {
    if (e instanceof NexioError) {
      // @ts-expect-error a misspelled error code
      if (e.code === 'NEXIO_ERR_TIMEOT') return;
    }
  }
  // Code exists at run time (a value, not a const enum)
  const codes: Record<string, number | string> = Code;
  void codes;
}
