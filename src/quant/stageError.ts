// Per-stage error of quantised checkpoints against their f32 original, on the trained-checkpoint parity inputs
// (src/testing/toyParity.ts: one world observation per embodiment, a text-only and a prompt-as case):
//   vision   the vision tower's output tokens (merger),
//   vlm      hidden_states[vlm_layer] (the DiT's context),
//   chunk    the raw action chunk (same noise; every (solver, steps) of the case),
//   actions  the physical actions.
// Each as ‖q − f‖/‖f‖ and max |q − f| over the case, worst case reported. Run: node dist/src/quant/stageError.js
// F32_DIR Q_DIR... [--json FILE] (bench/RESULTS.md, "Quantised weights").
import { writeFileSync } from 'node:fs';
import { Gpu } from '../gpu/device.js';
import { Policy } from '../policy/policy.js';
import { preprocessImage } from '../preprocess/image.js';
import { TOY_PARITY_CASES, toyParityInputs } from '../testing/toyParity.js';
import { Tensor } from '../tensor.js';

export interface StageErr { rel: number; maxAbs: number; refMaxAbs: number }

function err(got: ArrayLike<number>, ref: ArrayLike<number>): StageErr {
  let se = 0, ss = 0, maxAbs = 0, refMaxAbs = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = got[i]! - ref[i]!;
    se += d * d;
    ss += ref[i]! * ref[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(d));
    refMaxAbs = Math.max(refMaxAbs, Math.abs(ref[i]!));
  }
  return { rel: ss > 0 ? Math.sqrt(se / ss) : Math.sqrt(se), maxAbs, refMaxAbs };
}

type Outputs = Map<string, Float32Array>;

async function stageOutputs(policy: Policy): Promise<Outputs> {
  const out: Outputs = new Map();
  const ae = policy.config.actionExpert!;
  for (const c of TOY_PARITY_CASES) {
    const x = toyParityInputs(c, policy.tokenizer, policy.embodiments, policy.preprocessor, { hMax: ae.hMax, kMax: ae.kMax, sMax: ae.sMax });
    const images = x.frames.map((f) => ({ width: f.width, height: f.height, channels: 3 as const, data: f.data, camera: f.camera }));
    const vimgs = images.map((im) => {
      const p = preprocessImage(im, policy.preprocessor);
      return { pixels: p.pixelValues, grid: p.grid };
    });
    if (vimgs.length > 0) {
      const rowLen = vimgs[0]!.pixels.length / (vimgs[0]!.grid.t * vimgs[0]!.grid.h * vimgs[0]!.grid.w);
      const all = new Float32Array(vimgs.reduce((n, v) => n + v.pixels.length, 0));
      let o = 0;
      for (const v of vimgs) { all.set(v.pixels, o); o += v.pixels.length; }
      const px = Tensor.from(policy.gpu, all, [all.length / rowLen, rowLen]);
      const vis = policy.vlm.vision.forward(px, vimgs.map((v) => v.grid));
      out.set(`${c.name}.vision`, await vis.readF32());
      px.release();
      vis.release();
    }
    const pre = await policy.vlm.prefillRows([{ ids: x.ids, mmTokenTypeIds: x.mmTokenTypeIds, images: vimgs }], ae.vlmLayer);
    out.set(`${c.name}.vlm`, await pre.hidden.readF32());
    pre.hidden.release();
    for (const [solver, steps] of c.samples) {
      const r = await policy.act({
        images, instruction: x.instruction, embodiment: c.embodiment, state: x.state,
        ...(c.promptAs ? { promptAs: c.promptAs } : {}), noise: x.noise, steps, solver,
      });
      out.set(`${c.name}.chunk.${solver}${steps}`, r.raw);
      out.set(`${c.name}.actions.${solver}${steps}`, Float32Array.from(r.actions.actions));
    }
  }
  return out;
}

export async function stageErrors(f32Dir: string, qDirs: string[]): Promise<Record<string, Record<string, StageErr & { worstCase: string }>>> {
  const gpu = await Gpu.create();
  try {
    const load = async (dir: string) => {
      const p = await Policy.load(dir, { gpu });
      try {
        return { outs: await stageOutputs(p), bytes: p.weights.bytes };
      } finally {
        p.destroy();
      }
    };
    const ref = await load(f32Dir);
    const result: Record<string, Record<string, StageErr & { worstCase: string }>> = {};
    for (const dir of qDirs) {
      const q = await load(dir);
      const stages: Record<string, StageErr & { worstCase: string }> = {};
      for (const [key, want] of ref.outs) {
        const [cname, stage] = key.split('.') as [string, string];
        const e = err(q.outs.get(key)!, want);
        const cur = stages[stage];
        if (!cur || e.rel > cur.rel) stages[stage] = { ...e, worstCase: key.slice(cname.length + 1) === stage ? cname : `${cname} ${key.split('.')[2]}` };
      }
      result[dir] = { ...stages, weights: { rel: q.bytes / ref.bytes, maxAbs: q.bytes, refMaxAbs: ref.bytes, worstCase: 'GPU weight bytes (rel = ratio)' } };
    }
    return result;
  } finally {
    gpu.destroy();
  }
}

const isMain = process.argv[1] && /stageError\.js$/.test(process.argv[1]);
if (isMain) {
  const args = process.argv.slice(2);
  const j = args.indexOf('--json');
  const json = j >= 0 ? args.splice(j, 2)[1] : undefined;
  const [f32Dir, ...qDirs] = args;
  if (!f32Dir || qDirs.length === 0) {
    process.stderr.write('usage: node dist/src/quant/stageError.js F32_DIR Q_DIR... [--json FILE]\n');
    process.exit(2);
  }
  const r = await stageErrors(f32Dir, qDirs);
  for (const [dir, stages] of Object.entries(r)) {
    process.stdout.write(`${dir}\n`);
    for (const [s, e] of Object.entries(stages)) {
      if (s === 'weights') process.stdout.write(`  GPU weight bytes ${e.maxAbs} vs f32 ${e.refMaxAbs} (${(1 / e.rel).toFixed(2)}× smaller)\n`);
      else process.stdout.write(`  ${s.padEnd(8)} ‖q−f‖/‖f‖ ${e.rel.toExponential(2)}  max|q−f| ${e.maxAbs.toExponential(2)} (max|f| ${e.refMaxAbs.toFixed(2)})  worst: ${e.worstCase}\n`);
    }
  }
  if (json) writeFileSync(json, `${JSON.stringify({ f32: f32Dir, date: new Date().toISOString(), stages: r }, null, 2)}\n`);
}
