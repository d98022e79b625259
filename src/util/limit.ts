/**
 * A bound on concurrent tasks: `const limit = limiter(3); await Promise.all(xs.map((x) => limit(() => work(x))))`.
 * A finished task hands its slot straight to the next waiter.
 */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    else active++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}
