import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { DTYPE_SIZES, type Dtype } from '../../src/io/dtypes.js';
import type { TensorToWrite } from '../../src/io/safetensorsWriter.js';
import { Rng } from '../../src/util/rng.js';

/** Deterministic uniform [0, 1) stream: the project's seeded generator (src/util/rng.ts), one PRNG everywhere. */
export function rng(seed: number): () => number {
  const g = new Rng(seed);
  return () => g.uniform();
}

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

export async function tmpDir(prefix = 'qvla-io-'): Promise<string> {
  return fsp.mkdtemp(nodePath.join(os.tmpdir(), prefix));
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A tensor with random bytes; for float dtypes, finite random values of that dtype. */
export function randomTensor(r: () => number, name: string, dtype: Dtype, shape: number[]): TensorToWrite {
  const n = numel(shape);
  const bytes = new Uint8Array(n * DTYPE_SIZES[dtype]);
  if (dtype === 'F32') {
    const f = new Float32Array(bytes.buffer);
    for (let i = 0; i < n; i++) f[i] = (r() * 2 - 1) * 4;
  } else if (dtype === 'F64') {
    const f = new Float64Array(bytes.buffer);
    for (let i = 0; i < n; i++) f[i] = (r() * 2 - 1) * 4;
  } else if (dtype === 'BF16' || dtype === 'F16') {
    const u = new Uint16Array(bytes.buffer);
    const f = new Float32Array(1);
    const fu = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      f[0] = (r() * 2 - 1) * 4;
      if (dtype === 'BF16') u[i] = fu[0]! >>> 16;
      else {
        // a random finite f16: sign, exponent 0..30, mantissa
        u[i] = (randInt(r, 0, 1) << 15) | (randInt(r, 0, 30) << 10) | randInt(r, 0, 1023);
      }
    }
  } else if (dtype === 'BOOL') {
    for (let i = 0; i < n; i++) bytes[i] = r() < 0.5 ? 0 : 1;
  } else {
    bytes.set(randomBytes(r, bytes.length));
  }
  return { name, dtype, shape, data: bytes };
}

/** A tiny but complete config.json (every architectural feature at toy width). */
export function tinyConfigJson(): Record<string, unknown> {
  return {
    model_type: 'qwen3_5',
    image_token_id: 250,
    video_token_id: 251,
    vision_start_token_id: 252,
    vision_end_token_id: 253,
    tie_word_embeddings: true,
    text_config: {
      hidden_size: 64,
      num_hidden_layers: 4,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 32,
      intermediate_size: 128,
      vocab_size: 256,
      rms_norm_eps: 1e-6,
      rope_parameters: { rope_type: 'default', rope_theta: 10000000, partial_rotary_factor: 0.25, mrope_section: [2, 1, 1], mrope_interleaved: true },
      linear_num_key_heads: 2,
      linear_num_value_heads: 4,
      linear_key_head_dim: 16,
      linear_value_head_dim: 16,
      linear_conv_kernel_dim: 4,
      eos_token_id: 254,
    },
    vision_config: {
      depth: 2,
      hidden_size: 32,
      num_heads: 2,
      intermediate_size: 64,
      patch_size: 4,
      temporal_patch_size: 2,
      spatial_merge_size: 2,
      in_channels: 3,
      out_hidden_size: 64,
      num_position_embeddings: 16,
    },
    action_expert: {
      d_vlm: 64,
      hidden_size: 32,
      num_heads: 2,
      head_dim: 16,
      num_layers: 2,
      ff_inner: 64,
      d_out: 32,
      mlp_hidden: 32,
      state_hidden: 32,
      k_max: 8,
      s_max: 8,
      h_max: 4,
      max_seq_len: 16,
      timestep_channels: 16,
    },
  };
}
