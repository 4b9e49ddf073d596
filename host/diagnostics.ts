// Events for tooling, through diagnostics_channel (as undici does). Nothing
// is published unless somebody subscribes.
import diagnostics_channel from 'node:diagnostics_channel';

export const channels = {
  /** { event: 'open' | 'up' | 'down' | 'closed' | 'evicted' | 'protocol-error', lane, uri?, code?, error?, remote? } */
  lane: diagnostics_channel.channel('nexio:lane'),
  /** { event: 'open' | 'resumed' | 'lost' | 'closed' | 'rejected', session, id?, code? } */
  session: diagnostics_channel.channel('nexio:session'),
  /** { event: 'ended', error }: a context ended (closed, or its core trapped) */
  context: diagnostics_channel.channel('nexio:context'),
};
