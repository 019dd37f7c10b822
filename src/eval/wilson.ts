// The Wilson score interval of a binomial proportion (success rates of closed-loop evaluations).

/** The two-sided 95 % normal quantile Φ⁻¹(0.975). */
export const Z95 = 1.959963984540054;

/**
 * Wilson score interval for `successes` out of `n` trials (no continuity correction): centre
 * (p + z²/2n) / (1 + z²/n), half-width z·√(p(1−p)/n + z²/4n²) / (1 + z²/n). Stays inside [0, 1] and is not
 * degenerate at 0 or n successes (0/20 → [0, 0.161]). n = 0 → [0, 1] (nothing is known).
 */
export function wilsonInterval(successes: number, n: number, z = Z95): [number, number] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`wilsonInterval: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(successes) || successes < 0 || successes > n) throw new RangeError(`wilsonInterval: successes must be an integer in [0, ${n}], got ${successes}`);
  if (!(z > 0 && Number.isFinite(z))) throw new RangeError(`wilsonInterval: z must be a positive number, got ${z}`);
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // exact ends: 0 successes → lower 0, n successes → upper 1 (no rounding residue)
  return [successes === 0 ? 0 : Math.max(0, centre - half), successes === n ? 1 : Math.min(1, centre + half)];
}
