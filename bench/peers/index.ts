// The systems compared, nexio first (the ratios are nexio / peer; nexio-tls is
// nexio itself over tls://, reported as tls / tcp).
import type { System } from './common';
import { nexio, nexioTls } from './nexio';
import { raw } from './raw';
import { zeromq } from './zeromq';
import { grpcJs } from './grpc';

export const systems: System[] = [nexio, nexioTls, raw, zeromq, grpcJs];
export type { System, Client } from './common';
