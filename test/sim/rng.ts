// The simulation's only source of randomness: xoshiro128** seeded through
// splitmix32. A scenario is a pure function of its seed, so never reach for
// Math.random or Date here; fork() gives a sub-stream that later changes to
// one part of the simulation do not shift.

function splitmix32(x: number): () => number {
  return () => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** seed: any integer below 2^53. */
  constructor(seed: number) {
    const s = splitmix32((seed ^ Math.floor(seed / 4294967296) * 0x632be5ab) >>> 0);
    this.#a = s(); this.#b = s(); this.#c = s(); this.#d = s();
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return r;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return hi <= lo ? lo : lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** True with probability p. Draws nothing when p is 0 or 1, so a feature left off does not shift the stream. */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.float() < p;
  }

  pick<T>(a: readonly T[]): T {
    return a[Math.floor(this.float() * a.length)];
  }

  /** An independent stream, seeded from this one. */
  fork(): Rng {
    return new Rng(this.u32());
  }
}
