// Checks of the options the public API takes: each bad value is a
// NEXIO_ERR_INVALID_ARG naming the field and what it accepts, before any
// work is done (no plain TypeError escapes, nothing half-started).

import { InvalidArgumentError } from './errors';
import type { CoreConfig } from './core';

/** A check: undefined when the value is fine, else what the field accepts. */
export type Check = (v: unknown) => string | undefined;

function show(v: unknown): string {
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '…' : v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === null || v === undefined) return String(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return 'an array';
  const name = (v as object).constructor?.name;
  return !name || name === 'Object' ? 'a plain object' : `a ${name}`;
}

/** Throws NEXIO_ERR_INVALID_ARG for `where`'s `field` = v unless check passes. */
export function check(where: string, field: string, v: unknown, c: Check): void {
  const wants = c(v);
  if (wants !== undefined) throw new InvalidArgumentError(`${where}: ${field} must be ${wants}, not ${show(v)}`);
}

export const int = (min: number, max = Number.MAX_SAFE_INTEGER): Check => (v) =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? undefined
    : max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in ${min}..${max}`;

/** Milliseconds: a finite number >= min (0 where 0 means "none"). */
/** The longest wait a timer can hold (Node's timers and the core's u32 timeouts overflow beyond). */
export const MAX_MS = 0x7fffffff;
export const ms = (min = 0, zero?: string): Check => (v) =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= MAX_MS ? undefined
    : `a number of ms from ${min} to ${MAX_MS}${zero ? ` (0: ${zero})` : ''}`;

export const bool: Check = (v) => (typeof v === 'boolean' ? undefined : 'true or false');
export const str: Check = (v) => (typeof v === 'string' ? undefined : 'a string');
export const fn: Check = (v) => (typeof v === 'function' ? undefined : 'a function');
export const bytes: Check = (v) => (v instanceof Uint8Array ? undefined : 'a Uint8Array (Buffer)');
export const oneOf = (...xs: unknown[]): Check => (v) => (xs.includes(v) ? undefined : xs.map(show).join(' or '));
export const either = (a: Check, b: Check): Check => (v) => {
  const x = a(v);
  if (x === undefined) return undefined;
  const y = b(v);
  return y === undefined ? undefined : `${x} or ${y}`;
};
/** tls: handed to node:tls as it is (key, cert, ca, servername, requestCert, minVersion, ...); node:tls checks the values. */
export const tlsOptions: Check = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? undefined : 'an object of node:tls options (key, cert, ca, ...)';
export const uriList: Check = (v) =>
  Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? undefined : 'a non-empty array of URI strings';
export const signal: Check = (v) =>
  v !== null && typeof v === 'object' && typeof (v as AbortSignal).aborted === 'boolean' && typeof (v as AbortSignal).addEventListener === 'function'
    ? undefined : 'an AbortSignal';

/**
 * Checks an options object against its fields: not an object, an unknown
 * key or a bad value is NEXIO_ERR_INVALID_ARG. Undefined values are left
 * out (defaults apply). Returns the object ({} for undefined).
 */
export function checkOptions<T extends object>(where: string, o: T | undefined, fields: Record<string, Check>, prefix = ''): T {
  if (o === undefined) return {} as T;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    throw new InvalidArgumentError(`${where}: ${prefix ? prefix.slice(0, -1) : 'options'} must be an object, not ${show(o)}`);
  }
  for (const [k, v] of Object.entries(o)) {
    const c = fields[k];
    if (!c) throw new InvalidArgumentError(`${where}: unknown option '${prefix}${k}' (accepts: ${Object.keys(fields).map((f) => prefix + f).join(', ')})`);
    if (v !== undefined) check(where, prefix + k, v, c);
  }
  return o;
}

/** A nested options object: its fields checked with the prefix `name.`. */
export const nested = (where: string, name: string, fields: Record<string, Check>): Check => (v) => {
  checkOptions(where, v as object, fields, `${name}.`);
  return undefined;
};

/** What the core accepts for each config field (assembly/config.ts readConfig). */
const pow2 = (min: number, max: number): Check => (v) =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max && (v & (v - 1)) === 0 ? undefined : `a power of two in ${min}..${max}`;
export const coreFields: Record<keyof CoreConfig, Check> = {
  maxSessions: int(1, 16384),
  maxLanes: int(1, 65535),
  windowMsgs: pow2(16, 65536),
  windowBytes: pow2(32768, 1 << 26),
  maxRequests: int(1, 65535),
  keepaliveMs: int(1, 0xffffffff),
  resumeMs: int(0, 0xffffffff),
  helloTimeoutMs: int(1, 0xffffffff),
  backoffMinMs: int(1, 0xffffffff),
  backoffMaxMs: int(1, 0xffffffff),
  seed: int(0, 2 ** 48),
  eventCap: int(64, 65536),
  holdRx: bool,
  refuseOneway: bool,
  maxMessageBytes: int(8192 + 4096, 0xffffffff),
};

/** Checks a (partial) core config: each field named when it is out of range. */
export function checkCore(where: string, core: Partial<CoreConfig> | undefined, prefix = 'core.'): void {
  checkOptions(where, core, coreFields, prefix);
  if (core?.backoffMinMs !== undefined && core.backoffMaxMs !== undefined && core.backoffMaxMs < core.backoffMinMs) {
    throw new InvalidArgumentError(`${where}: ${prefix}backoffMaxMs (${core.backoffMaxMs}) must be >= ${prefix}backoffMinMs (${core.backoffMinMs})`);
  }
}
