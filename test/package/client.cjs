// The getting-started client (docs/getting-started.md), CommonJS: node client.cjs URI
const { connect } = require('nexio');

async function main(uri) {
  const session = await connect(uri, { lanes: 2 });

  const reply = await session.request('get', 'key-1', { timeout: 1000 });
  console.log(reply.data.toString());

  await session.send('log', 'a one-way message');                 // no response
  await session.send('log', 'delivered for sure', { receipt: true }); // resolves when the server app got it

  const ac = new AbortController();
  const p = session.request('slow', '', { signal: ac.signal });
  ac.abort();                                                        // rejects at once with NEXIO_ERR_ABORTED
  await p.catch((e) => console.log(e.code));

  await session.close();
}
main(process.argv[2]);
