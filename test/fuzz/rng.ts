// A small seeded PRNG (sfc32 seeded through splitmix32): every fuzz run is
// a pure function of (seed, run index), so a failure can be replayed alone.

function splitmix32(x: number): () => number {
  return () => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const POOL_BYTES = 1 << 20;
let poolBuf: Buffer | undefined;

function pool(): Buffer {
  if (!poolBuf) {
    const r = new Rng(0x706f6f6c);
    poolBuf = Buffer.allocUnsafe(POOL_BYTES);
    for (let i = 0; i < POOL_BYTES; i += 4) poolBuf.writeUInt32LE(r.u32(), i);
  }
  return poolBuf;
}

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number, stream = 0) {
    const s = splitmix32((seed ^ Math.imul(stream + 1, 0x27d4eb2f)) >>> 0);
    this.#a = s(); this.#b = s(); this.#c = s(); this.#d = s();
    for (let i = 0; i < 8; i++) this.u32();
  }

  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 4294967296) * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }

  /** Small sizes most of the time, large ones sometimes. */
  size(small: number, large: number): number {
    return this.chance(0.85) ? this.int(small + 1) : this.int(large + 1);
  }

  /** n random bytes (a copy of a random window of a fixed random pool: fast and still deterministic). */
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let i = 0;
    while (i < n) {
      const k = Math.min(n - i, POOL_BYTES / 2);
      const from = this.int(POOL_BYTES - k + 1);
      pool().copy(b, i, from, from + k);
      i += k;
    }
    return b;
  }

  /** A 64-bit value as a bigint. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}
