// The handler `nexio serve` and `npm start` use: answers each request with
// its own header and data; counts one-way messages.
import type { IncomingRequest, Session } from './session';

let messages = 0;

export function handler(req: IncomingRequest): { header: Buffer; data: Buffer } {
  return { header: req.header, data: req.data };
}

export function onMessage(_s: Session, _h: Buffer, _d: Buffer): void {
  messages++;
}

export function messageCount(): number {
  return messages;
}
