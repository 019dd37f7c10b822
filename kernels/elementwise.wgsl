// Elementwise ops over n elements, grid-stride (any n; the grid is capped, each invocation loops).
//   OP 0 add     y = a + b[i mod b_n]                 (b broadcasts over leading rows when b_n < n)
//   OP 1 mul     y = a · b[i mod b_n]
//   OP 2 unary   y = act(a)                           (ACT code from lib/activations)
//   OP 3 swiglu  y = silu(a) · b                      (a = gate, b = up)
//   OP 4 axpy    y = y + alpha · a (· m[i mod m_n])   (in place on y; HAS_MASK)
//   OP 5 scale   y = alpha · a
//   OP 6 copy    y = a, bit-exact 32-bit words (f32, i32 and u32 alike)
//   OP 7 fill    y = bits
// Buffers are declared as u32 words and bitcast, so copy/fill move any 4-byte dtype unchanged.
// An input that lives in the output's GPUBuffer is read through Y (A_IS_Y, B_IS_Y, M_IS_Y): WebGPU forbids
// binding one buffer read-only and read-write in the same dispatch. Its element offset is then into Y.
// Not vectorised: views have arbitrary element offsets and broadcast periods, and these ops are memory-bound
// with coalesced scalar accesses already.
// Interface generated from ELEMENTWISE_IO in src/ops/elementwise.ts: A, B, M, Y are u32 words; b_n / m_n are
// broadcast periods (= n when same-size); bits is the fill word.

// index into a broadcast operand of period `period` (no division in the common same-size case)
fn bidx(i: u32, period: u32) -> u32 {
  if (period == P.n) { return i; }
  return i % period;
}

fn word_a(i: u32) -> u32 {
  if (A_IS_Y) { return Y[P.a_off + i]; }
  return A[P.a_off + i];
}

fn val_a(i: u32) -> f32 { return bitcast<f32>(word_a(i)); }

fn val_b(i: u32) -> f32 {
  let j = P.b_off + bidx(i, P.b_n);
  if (B_IS_Y) { return bitcast<f32>(Y[j]); }
  return bitcast<f32>(B[j]);
}

fn val_m(i: u32) -> f32 {
  let j = P.m_off + bidx(i, P.m_n);
  if (M_IS_Y) { return bitcast<f32>(Y[j]); }
  return bitcast<f32>(M[j]);
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * WG_X;
  for (var i = gid.x; i < P.n; i += stride) {
    let yi = P.y_off + i;
    switch OP {
      case 0u: { Y[yi] = bitcast<u32>(val_a(i) + val_b(i)); }
      case 1u: { Y[yi] = bitcast<u32>(val_a(i) * val_b(i)); }
      case 2u: { Y[yi] = bitcast<u32>(apply_act(ACT, val_a(i))); }
      case 3u: {
        let g = val_a(i);
        Y[yi] = bitcast<u32>(g * sigmoid_f(g) * val_b(i));
      }
      case 4u: {
        var t = P.alpha * val_a(i);
        if (HAS_MASK) { t = t * val_m(i); }
        Y[yi] = bitcast<u32>(bitcast<f32>(Y[yi]) + t);
      }
      case 5u: { Y[yi] = bitcast<u32>(P.alpha * val_a(i)); }
      case 6u: { Y[yi] = word_a(i); }
      default: { Y[yi] = P.bits; }
    }
  }
}
