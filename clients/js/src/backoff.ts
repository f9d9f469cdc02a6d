// Exponential backoff with full jitter: the n-th retry waits a uniformly random time in
// [0, min(max, base * 2^n)). Full jitter spreads a crowd of clients that lost the same server
// evenly over the window instead of letting them return in waves.

export interface BackoffOptions {
  /** Ceiling of the first retry's window, in milliseconds. */
  baseMs: number;
  /** Largest window, in milliseconds. */
  maxMs: number;
  /** Uniform random number in [0, 1); Math.random by default. */
  random?: () => number;
}

export class Backoff {
  private attempts = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions) {
    this.baseMs = Math.max(1, options.baseMs);
    this.maxMs = Math.max(this.baseMs, options.maxMs);
    this.random = options.random ?? Math.random;
  }

  /** Retries handed out since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** The window of the next retry: the delay `next()` returns is below this. */
  ceiling(attempt = this.attempts): number {
    // 2^31 is far past any cap; stopping there keeps the arithmetic exact.
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(attempt, 31));
  }

  /** The delay before the next retry, in whole milliseconds; counts the retry. */
  next(): number {
    const ceiling = this.ceiling();
    this.attempts += 1;
    const r = this.random();
    const unit = r >= 0 && r < 1 ? r : 0;
    return Math.floor(unit * ceiling);
  }

  /** After a stable connection: the next retry starts from the base window again. */
  reset(): void {
    this.attempts = 0;
  }

  /** For failures a quick retry can't fix (a rejected request): go straight to the largest window. */
  exhaust(): void {
    while (this.ceiling() < this.maxMs) this.attempts += 1;
  }
}
