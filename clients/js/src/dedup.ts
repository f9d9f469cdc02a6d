// A bounded set of recently seen keys with least-recently-used eviction. A Set iterates in
// insertion order, so re-inserting a key on every hit makes its first element the eldest.

export class DedupCache {
  private readonly keys = new Set<string>();
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity));
  }

  /** Records `key`; returns false when it was already there (a duplicate). */
  add(key: string): boolean {
    if (this.keys.has(key)) {
      this.keys.delete(key);
      this.keys.add(key);
      return false;
    }
    this.keys.add(key);
    if (this.keys.size > this.capacity) {
      const eldest = this.keys.values().next().value as string;
      this.keys.delete(eldest);
    }
    return true;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  get size(): number {
    return this.keys.size;
  }

  clear(): void {
    this.keys.clear();
  }
}
