// Key visibility and vec4 loads shared by attention.wgsl and attention_decode.wgsl (same semantics: GQA,
// causal limit, cu_seqlens segments, key-padding mask). The including kernel declares:
//   P (uniform) with fields Lk: u32, m_off: u32, mask_kind: u32 (0 none, 1 u32/i32 with 0 = masked, 2 f32 with
//     ±0.0 = masked), nseg: u32, causal_off: i32;
//   storage arrays Q, K, V: array<f32> and Mk, Seg: array<u32>; the const ROLLED (see trip()).

// Trip count of a constant-trip loop: the constant `c` on GPUs (the loop unrolls); the same value read from
// Params (`p`) on software adapters, so lavapipe's LLVM keeps the loop rolled (unrolling costs 5–25 s per variant).
fn trip(c: u32, p: u32) -> u32 { return select(c, p, ROLLED); }

fn ldq(i: u32) -> vec4f { return vec4f(Q[i], Q[i + 1u], Q[i + 2u], Q[i + 3u]); }
fn ldk(i: u32) -> vec4f { return vec4f(K[i], K[i + 1u], K[i + 2u], K[i + 3u]); }
fn ldv(i: u32) -> vec4f { return vec4f(V[i], V[i + 1u], V[i + 2u], V[i + 3u]); }

// Key j exists and is not masked out by the key-padding mask.
fn key_ok(j: u32) -> bool {
  if (j >= P.Lk) { return false; }
  if (P.mask_kind == 0u) { return true; }
  let b = Mk[P.m_off + j];
  if (P.mask_kind == 2u) { return (b & 0x7fffffffu) != 0u; }
  return b != 0u;
}

// Index of the segment holding token i: the largest k < nseg with Seg[k] ≤ i.
fn seg_of(i: u32) -> u32 {
  var a = 0u;
  var b = P.nseg;
  while (b - a > 1u) {
    let m = (a + b) / 2u;
    if (Seg[m] <= i) { a = m; } else { b = m; }
  }
  return a;
}

// Keys visible to query i by the causal rule: [0, causal_hi(i)).
fn causal_hi(i: u32) -> u32 {
  return u32(clamp(i32(i) + P.causal_off + 1, 0, i32(P.Lk)));
}
