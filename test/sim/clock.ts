// Virtual time: a priority queue of tasks ordered by (time, insertion), so
// two tasks due at the same microsecond always run in the order they were
// scheduled. Time moves only when the next task is taken.
//
// Each task belongs to an actor (a client's context, the server, the
// scenario): the one whose code it runs. A task scheduled without one
// inherits the actor of the task running when it was scheduled. The
// network uses this to know which client context dialled a connection.
//
// A ContextClock is the HostClock one Context (and its Sessions and
// connect()) runs on: its timers are tasks of the context's actor, and it
// knows which of them are still armed (a context that ended must hold none).

import type { HostClock } from '../../host/context';

export type Task = { at: number; seq: number; fn: () => void; actor: number; dead: boolean };

/** Actors that are not a client context (clients are 0, 1, ...). */
export const SERVER = -1;
export const SCENARIO = -2;

export class Clock {
  /** Virtual time in µs. */
  now = 0;
  /** The actor of the task running now. */
  actor = SCENARIO;
  #heap: Task[] = [];
  #seq = 0;
  #live = 0;

  /** Tasks still to run (cancelled ones not counted). */
  get pending(): number {
    return this.#live;
  }

  /** Runs fn at virtual time t (never in the past). */
  at(t: number, fn: () => void, actor = this.actor): Task {
    const h = this.#heap;
    const task: Task = { at: t < this.now ? this.now : Math.round(t), seq: this.#seq++, fn, actor, dead: false };
    this.#live++;
    h.push(task);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(task, h[p])) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = task;
    return task;
  }

  after(dt: number, fn: () => void, actor = this.actor): Task {
    return this.at(this.now + dt, fn, actor);
  }

  /** The task will not run. */
  cancel(task: Task): void {
    if (task.dead) return;
    task.dead = true;
    this.#live--;
  }

  /** Time of the next task, or Infinity. */
  peek(): number {
    this.#skipDead();
    return this.#heap.length ? this.#heap[0].at : Infinity;
  }

  /** Takes the next task, advancing the clock to it and making its actor current. */
  take(): Task | undefined {
    this.#skipDead();
    const top = this.#pop();
    if (!top) return undefined;
    top.dead = true;
    this.#live--;
    this.now = top.at;
    this.actor = top.actor;
    return top;
  }

  /** Live tasks (for reports): actor and due time. */
  live(): Task[] {
    return this.#heap.filter((t) => !t.dead).sort((a, b) => (less(a, b) ? -1 : 1));
  }

  #skipDead(): void {
    while (this.#heap.length && this.#heap[0].dead) this.#pop();
  }

  #pop(): Task | undefined {
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
    return top;
  }
}

function less(a: Task, b: Task): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** The HostClock of one context: virtual time, timers as tasks of its actor. */
export class ContextClock implements HostClock {
  /** Timers armed and not yet fired or cleared. */
  readonly armed = new Set<Task>();
  constructor(readonly clock: Clock, readonly actor: number) {}

  now(): number {
    return this.clock.now;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const us = Math.max(0, Math.round(ms * 1000));
    const t: Task = this.clock.after(us, () => {
      this.armed.delete(t);
      fn();
    }, this.actor);
    this.armed.add(t);
    return t;
  }

  clearTimer(handle: unknown): void {
    const t = handle as Task | undefined;
    if (t && this.armed.delete(t)) this.clock.cancel(t);
  }
}
