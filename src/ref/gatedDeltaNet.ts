// Plain f64 CPU references of the Gated DeltaNet pieces (docs/architecture.md §5.3–§5.7), written plainly
// from the equations. All inputs are contiguous: x [L, C], weight [C, K], conv state [K−1, C]; q, k [L, Hk, dk],
// v [L, Hv, dv], g, beta [L, Hv], recurrent state [Hv, dk, dv] (S[i, v]: i over dk, v over dv).
import { sigmoid, silu, softplus } from './activations.js';

/**
 * u[t, c] = silu( Σ_k W[c, k] · in[t − (K−1) + k, c] ), where `in` is the conv state (K−1 previous inputs,
 * oldest first) followed by x. Returns y [L, C] and the new state = the last K−1 rows of `in`.
 */
export function causalConv1dSiluRef(
  x: ArrayLike<number>, w: ArrayLike<number>, state: ArrayLike<number>, L: number, C: number, K: number,
): { y: Float64Array; state: Float64Array } {
  const H = K - 1;
  const input = (t: number, c: number) => (t >= 0 ? x[t * C + c] : state[(H + t) * C + c]); // t ∈ [−H, L)
  const y = new Float64Array(L * C);
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += w[c * K + k] * input(t - H + k, c);
      y[t * C + c] = silu(s);
    }
  }
  const ns = new Float64Array(H * C);
  for (let r = 0; r < H; r++) for (let c = 0; c < C; c++) ns[r * C + c] = input(L - H + r, c);
  return { y, state: ns };
}

/** g = −exp(A_log) · softplus(a + dt_bias) (PyTorch softplus, threshold 20); beta = sigmoid(b). a, b: [L, Hv]. */
export function gatedDeltaNetGatesRef(
  a: ArrayLike<number>, b: ArrayLike<number>, aLog: ArrayLike<number>, dtBias: ArrayLike<number>, L: number, Hv: number,
): { g: Float64Array; beta: Float64Array } {
  const g = new Float64Array(L * Hv);
  const beta = new Float64Array(L * Hv);
  for (let t = 0; t < L; t++) {
    for (let j = 0; j < Hv; j++) {
      g[t * Hv + j] = -Math.exp(aLog[j]) * softplus(a[t * Hv + j] + dtBias[j]);
      beta[t * Hv + j] = sigmoid(b[t * Hv + j]);
    }
  }
  return { g, beta };
}

export interface DeltaRuleRefArgs {
  q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number>;
  g: ArrayLike<number>; beta: ArrayLike<number>;
  /** [Hv, dk, dv]; zeros when absent. Not modified. */
  state?: ArrayLike<number>;
  L: number; Hk: number; Hv: number; dk: number; dv: number;
}

/** Normalised q (scaled by dk^-½) and k of token t, k-head h (§5.4). */
function normalisedQK(a: DeltaRuleRefArgs, t: number, h: number): { q: Float64Array; k: Float64Array } {
  const { dk, Hk } = a;
  const base = (t * Hk + h) * dk;
  let sq = 0, sk = 0;
  for (let i = 0; i < dk; i++) {
    sq += a.q[base + i] ** 2;
    sk += a.k[base + i] ** 2;
  }
  const nq = 1 / Math.sqrt(sq + 1e-6) / Math.sqrt(dk);
  const nk = 1 / Math.sqrt(sk + 1e-6);
  const q = new Float64Array(dk), k = new Float64Array(dk);
  for (let i = 0; i < dk; i++) {
    q[i] = a.q[base + i] * nq;
    k[i] = a.k[base + i] * nk;
  }
  return { q, k };
}

function initialState(a: DeltaRuleRefArgs): Float64Array {
  const S = new Float64Array(a.Hv * a.dk * a.dv);
  if (a.state) for (let n = 0; n < S.length; n++) S[n] = a.state[n];
  return S;
}

/** docs/architecture.md §5.5, token by token. Returns o [L, Hv, dv] and the final state [Hv, dk, dv]. */
export function gatedDeltaRuleRecurrentRef(a: DeltaRuleRefArgs): { out: Float64Array; state: Float64Array } {
  const { L, Hk, Hv, dk, dv } = a;
  const S = initialState(a);
  const out = new Float64Array(L * Hv * dv);
  const group = Hv / Hk;
  for (let j = 0; j < Hv; j++) {
    const Sj = S.subarray(j * dk * dv, (j + 1) * dk * dv);
    for (let t = 0; t < L; t++) {
      const { q, k } = normalisedQK(a, t, Math.floor(j / group));
      const decay = Math.exp(a.g[t * Hv + j]);
      const beta = a.beta[t * Hv + j];
      for (let n = 0; n < dk * dv; n++) Sj[n] *= decay;
      for (let c = 0; c < dv; c++) {
        let mem = 0;
        for (let i = 0; i < dk; i++) mem += Sj[i * dv + c] * k[i];
        const delta = beta * (a.v[(t * Hv + j) * dv + c] - mem);
        for (let i = 0; i < dk; i++) Sj[i * dv + c] += k[i] * delta;
        let o = 0;
        for (let i = 0; i < dk; i++) o += Sj[i * dv + c] * q[i];
        out[(t * Hv + j) * dv + c] = o;
      }
    }
  }
  return { out, state: S };
}

/**
 * docs/architecture.md §5.6 literally: pad to a multiple of C, γ = in-chunk cumulative g, M, U = (I+M)⁻¹(β⊙V) and
 * W = (I+M)⁻¹(β⊙e^γ⊙K) by forward substitution, then V' = U − W·S, O = (e^γ⊙Q)·S + ((Q·Kᵀ)⊙D)·V',
 * S ← e^{γ_C}·S + (e^{γ_C−γ}⊙K)ᵀ·V'. Used to validate the algorithm against the recurrence.
 */
export function gatedDeltaRuleChunkedRef(a: DeltaRuleRefArgs & { chunkSize?: number }): { out: Float64Array; state: Float64Array } {
  const { L, Hk, Hv, dk, dv } = a;
  const C = a.chunkSize ?? 64;
  const S = initialState(a);
  const out = new Float64Array(L * Hv * dv);
  const group = Hv / Hk;
  const nChunks = Math.ceil(L / C);
  for (let j = 0; j < Hv; j++) {
    const Sj = S.subarray(j * dk * dv, (j + 1) * dk * dv);
    for (let ch = 0; ch < nChunks; ch++) {
      // Padded chunk: k = q = v = 0, β = 0, g = 0 beyond L.
      const Q = new Float64Array(C * dk), K = new Float64Array(C * dk), V = new Float64Array(C * dv);
      const beta = new Float64Array(C), gam = new Float64Array(C);
      let acc = 0;
      for (let r = 0; r < C; r++) {
        const t = ch * C + r;
        if (t < L) {
          const { q, k } = normalisedQK(a, t, Math.floor(j / group));
          Q.set(q, r * dk);
          K.set(k, r * dk);
          for (let c = 0; c < dv; c++) V[r * dv + c] = a.v[(t * Hv + j) * dv + c];
          beta[r] = a.beta[t * Hv + j];
          acc += a.g[t * Hv + j];
        }
        gam[r] = acc;
      }
      const dot = (A: Float64Array, r: number, B: Float64Array, s: number) => {
        let d = 0;
        for (let i = 0; i < dk; i++) d += A[r * dk + i] * B[s * dk + i];
        return d;
      };
      // M[r, s] = β_r (k_r·k_s) e^{γ_r−γ_s}, s < r.
      const M = new Float64Array(C * C);
      for (let r = 0; r < C; r++) for (let s = 0; s < r; s++) M[r * C + s] = beta[r] * dot(K, r, K, s) * Math.exp(gam[r] - gam[s]);
      // Forward substitution of (I+M) X = B, row by row.
      const solve = (B: Float64Array, width: number) => {
        const X = new Float64Array(C * width);
        for (let r = 0; r < C; r++) {
          for (let c = 0; c < width; c++) {
            let x = B[r * width + c];
            for (let s = 0; s < r; s++) x -= M[r * C + s] * X[s * width + c];
            X[r * width + c] = x;
          }
        }
        return X;
      };
      const bV = new Float64Array(C * dv), bgK = new Float64Array(C * dk);
      for (let r = 0; r < C; r++) {
        for (let c = 0; c < dv; c++) bV[r * dv + c] = beta[r] * V[r * dv + c];
        for (let i = 0; i < dk; i++) bgK[r * dk + i] = beta[r] * Math.exp(gam[r]) * K[r * dk + i];
      }
      const U = solve(bV, dv);
      const W = solve(bgK, dk);
      // V' = U − W S
      const Vp = new Float64Array(C * dv);
      for (let r = 0; r < C; r++) {
        for (let c = 0; c < dv; c++) {
          let ws = 0;
          for (let i = 0; i < dk; i++) ws += W[r * dk + i] * Sj[i * dv + c];
          Vp[r * dv + c] = U[r * dv + c] - ws;
        }
      }
      // O = (e^γ ⊙ Q) S + ((Q Kᵀ) ⊙ D) V'
      for (let r = 0; r < C; r++) {
        const t = ch * C + r;
        if (t >= L) break;
        for (let c = 0; c < dv; c++) {
          let o = 0;
          for (let i = 0; i < dk; i++) o += Math.exp(gam[r]) * Q[r * dk + i] * Sj[i * dv + c];
          for (let s = 0; s <= r; s++) o += dot(Q, r, K, s) * Math.exp(gam[r] - gam[s]) * Vp[s * dv + c];
          out[(t * Hv + j) * dv + c] = o;
        }
      }
      // S ← e^{γ_C} S + (e^{γ_C − γ} ⊙ K)ᵀ V'
      const gC = gam[C - 1];
      for (let i = 0; i < dk; i++) {
        for (let c = 0; c < dv; c++) {
          let s = Math.exp(gC) * Sj[i * dv + c];
          for (let r = 0; r < C; r++) s += Math.exp(gC - gam[r]) * K[r * dk + i] * Vp[r * dv + c];
          Sj[i * dv + c] = s;
        }
      }
    }
  }
  return { out, state: S };
}
