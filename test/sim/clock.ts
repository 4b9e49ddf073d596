// Virtual time: a priority queue of tasks ordered by (time, insertion), so
// two tasks due at the same microsecond always run in the order they were
// scheduled. Time moves only when the next task is taken.

export type Task = { at: number; seq: number; fn: () => void };

export class Clock {
  /** Virtual time in µs. */
  now = 0;
  #heap: Task[] = [];
  #seq = 0;

  get pending(): number {
    return this.#heap.length;
  }

  /** Runs fn at virtual time t (never in the past). */
  at(t: number, fn: () => void): void {
    const h = this.#heap;
    const task = { at: t < this.now ? this.now : t, seq: this.#seq++, fn };
    h.push(task);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(task, h[p])) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = task;
  }

  after(dt: number, fn: () => void): void {
    this.at(this.now + dt, fn);
  }

  /** Time of the next task, or Infinity. */
  peek(): number {
    return this.#heap.length ? this.#heap[0].at : Infinity;
  }

  /** Takes the next task, advancing the clock to it. */
  take(): Task | undefined {
    const h = this.#heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && less(h[r], h[l]) ? r : l;
        if (!less(h[c], last)) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    this.now = top.at;
    return top;
  }
}

function less(a: Task, b: Task): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
