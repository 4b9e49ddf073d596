// Seeded xorshift64*: the core never reads a random source; the host gives
// the seed, so the same inputs give the same session ids and jitter.
let state: u64 = 0x9E3779B97F4A7C15;

export function seed(lo: u32, hi: u32): void {
  state = (((<u64>hi) << 32) | <u64>lo) ^ 0x9E3779B97F4A7C15;
  if (state == 0) state = 1;
}

export function next(): u64 {
  let x = state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  state = x;
  return x * 0x2545F4914F6CDD1D;
}
