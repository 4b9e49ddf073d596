// Core configuration, written by the host into the config block before
// init(). Every size is fixed at init: the core allocates nothing after.
//
//  config block (u32 words):
//   0 maxSessions   1 maxLanes     2 windowMsgs (pow2)  3 windowBytes (pow2)
//   4 maxRequests   5 keepaliveMs  6 resumeMs           7 helloTimeoutMs
//   8 backoffMinMs  9 backoffMaxMs 10 seedLo            11 seedHi
//  12 eventCap    13 holdRx (1: delivered messages stay in the receive ring,
//                     unacked, until the host releases them: zero-copy views)
//  14 maxMessage  largest message (header + data) a peer may send us, in
//                 bytes; a larger claim is a protocol error before the host
//                 allocates anything (0: no limit but the u32 length field,
//                 what recordings made before the word existed hold)
//  15 refuseOneway  1: this (server) core takes no one-way messages: its new
//                 sessions' ACCEPT says so (F_NO_ONEWAY) and a ONEWAY from a
//                 client is refused (bad-type); 0 in older recordings

export const CONFIG_WORDS: i32 = 16;
export const configBlock: usize = memory.data(CONFIG_WORDS * 4);

export let maxSessions: u32 = 0;
export let maxLanes: u32 = 0;
export let windowMsgs: u32 = 0;
export let windowBytes: u32 = 0;
export let maxRequests: u32 = 0;
export let keepaliveUs: u64 = 0;
export let resumeUs: u64 = 0;
export let helloTimeoutUs: u64 = 0;
export let backoffMinUs: u64 = 0;
export let backoffMaxUs: u64 = 0;
export let seedLo: u32 = 0;
export let seedHi: u32 = 0;
export let eventCap: u32 = 0;
export let holdRx: u32 = 0;
export let maxMessage: u32 = 0;
export let refuseOneway: u32 = 0;

export const LANES_PER_SESSION: i32 = 8;
/**
 * The longest an ACK waits for a batch to ride on (protocol.md section 12,
 * "Acks by rule"): 5 ms. Sooner when a quarter of the window is unacked.
 */
export const ACK_DELAY_US: u64 = 5000;

@inline function word(i: i32): u32 {
  return load<u32>(configBlock + (<usize>i << 2));
}

@inline function isPow2(x: u32): bool {
  return x != 0 && (x & (x - 1)) == 0;
}

/** Reads and checks the config block. Returns false if it is unusable. */
export function readConfig(): bool {
  maxSessions = word(0);
  maxLanes = word(1);
  windowMsgs = word(2);
  windowBytes = word(3);
  maxRequests = word(4);
  keepaliveUs = <u64>word(5) * 1000;
  resumeUs = <u64>word(6) * 1000;
  helloTimeoutUs = <u64>word(7) * 1000;
  backoffMinUs = <u64>word(8) * 1000;
  backoffMaxUs = <u64>word(9) * 1000;
  seedLo = word(10);
  seedHi = word(11);
  eventCap = word(12);
  holdRx = word(13);
  maxMessage = word(14);
  refuseOneway = word(15);
  if (maxMessage == 0) maxMessage = 0xffffffff;
  if (maxSessions < 1 || maxSessions > 16384) return false;
  if (maxLanes < 1 || maxLanes > 65535) return false;
  if (!isPow2(windowMsgs) || windowMsgs < 16 || windowMsgs > 65536) return false;
  if (!isPow2(windowBytes) || windowBytes < 32768 || windowBytes > (1 << 26)) return false;
  if (maxRequests < 1 || maxRequests > 65535) return false;
  if (keepaliveUs == 0 || helloTimeoutUs == 0) return false;
  if (backoffMinUs == 0 || backoffMaxUs < backoffMinUs) return false;
  if (eventCap < 64 || eventCap > 65536) return false;
  if (holdRx > 1 || refuseOneway > 1) return false;
  if (maxMessage < 8192 + 4096) return false;
  return true;
}
