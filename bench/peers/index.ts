// The systems compared, nexio first (the ratios are nexio / peer).
import type { System } from './common';
import { nexio } from './nexio';
import { raw } from './raw';
import { zeromq } from './zeromq';
import { grpcJs } from './grpc';

export const systems: System[] = [nexio, raw, zeromq, grpcJs];
export type { System, Client } from './common';
