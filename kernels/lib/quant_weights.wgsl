// Reading weight-only quantised Linear weights (format: docs/quantization.md), shared by linear_q.wgsl and
// linear_q_gemv.wgsl. Q holds the packed weights as u32 words (int4: 8 elements per word, element k at bits
// 4·(k mod 8); int8: 4 signed bytes per word, element k at byte k mod 4), S the f16 scales two per word, Z the
// u8 zero points four per word. Needs BITS and HAS_ZERO consts and the Q/S/Z bindings.

// The scale at flat index i of the [N, groups] scale matrix (f16 pairs: no shader-f16 needed).
fn q_scale(i: u32) -> f32 {
  return unpack2x16float(S[i >> 1u])[i & 1u];
}

// The zero point of int4 group i (8, the middle of 0..15, when the checkpoint stores none).
fn q_zero(i: u32) -> f32 {
  if (HAS_ZERO) { return f32((Z[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu); }
  return 8.0;
}

// int4: the even and odd elements of a word (k, k+2, k+4, k+6 and k+1, k+3, k+5, k+7) as integers 0..15.
fn q4_even(w: u32) -> vec4f { return vec4f((vec4u(w) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(15u)); }
fn q4_odd(w: u32) -> vec4f { return vec4f((vec4u(w) >> vec4u(4u, 12u, 20u, 28u)) & vec4u(15u)); }

// int8: the four signed bytes of a word, sign-extended.
fn q8_vec(w: u32) -> vec4f { return vec4f((vec4i(bitcast<i32>(w)) << vec4u(24u, 16u, 8u, 0u)) >> vec4u(24u)); }
