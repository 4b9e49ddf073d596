// The systems compared, nexio first (the ratios are nexio / peer; nexio-tls is
// nexio itself over tls://, reported as tls / tcp).
import type { System } from './common';
import { nexio, nexioTls, nexioPromise, nexioViews } from './nexio';
import { raw } from './raw';
import { zeromq } from './zeromq';
import { grpcJs } from './grpc';

export const systems: System[] = [nexio, nexioTls, nexioPromise, nexioViews, raw, zeromq, grpcJs];
export type { System, Client } from './common';
