#!/usr/bin/env node
// Writes the inputs of the trained-checkpoint parity fixture with the TypeScript side (the worlds, the prompt
// builder, the state normalisation and the noise generator act() uses): for every case of TOY_PARITY_CASES
// (src/testing/toyParity.ts) the observation of a world episode at an evaluation seed. The PyTorch side
// (tools/train/make_parity_fixture.py, which calls this script) runs the training port on them.
//
// usage: node tools/train/parity_inputs.mjs CKPT_DIR OUT.safetensors      (needs `npx tsc -p tsconfig.json`)
//
// Tensors, per case NAME: NAME.frames U8 [C, H, W, 3] (absent for a text-only case), NAME.input_ids I32 [L],
// NAME.state F32 [s_max] (normalised, zero-padded), NAME.noise F32 [h_max, k_max] (unmasked, as drawn).
// __metadata__.parity_inputs: JSON {cases: [{name, world, embodiment, level, seed, decision, images, prompt_as,
// samples, instruction, state_raw, noise_seed, h_e, k_e, image_grids}], h_max, k_max, s_max}.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = (p) => new URL(`../../dist/src/${p}`, import.meta.url);
if (!existsSync(fileURLToPath(dist('testing/toyParity.js')))) {
  console.error('not built yet: run `npx tsc -p tsconfig.json` first');
  process.exit(2);
}
const { TOY_PARITY_CASES, toyParityInputs } = await import(dist('testing/toyParity.js').href);
const { openCheckpoint } = await import(dist('io/checkpoint.js').href);
const { parseEmbodiments } = await import(dist('policy/embodiments.js').href);
const { QvlaTokenizer } = await import(dist('text/tokenizer.js').href);
const { writeSafetensors } = await import(dist('io/safetensorsWriter.js').href);

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node tools/train/parity_inputs.mjs CKPT_DIR OUT.safetensors');
  process.exit(2);
}
const ckpt = await openCheckpoint(dir, { requireEmbodiments: true });
try {
  const ae = ckpt.config.actionExpert;
  if (!ae) throw new Error(`${dir}: no action_expert section`);
  const dims = { hMax: ae.hMax, kMax: ae.kMax, sMax: ae.sMax };
  const registry = parseEmbodiments(ckpt.embodiments, dims, `${dir}/embodiments.json`);
  const tok = await QvlaTokenizer.load(dir);
  const tensors = [];
  const cases = [];
  for (const c of TOY_PARITY_CASES) {
    const x = toyParityInputs(c, tok, registry, ckpt.preprocessor, dims);
    if (x.frames.length > 0) {
      const { width: W, height: H } = x.frames[0];
      const data = new Uint8Array(x.frames.length * H * W * 3);
      x.frames.forEach((f, k) => {
        if (f.width !== W || f.height !== H) throw new Error(`${c.name}: cameras of different sizes`);
        data.set(f.data, k * H * W * 3);
      });
      tensors.push({ name: `${c.name}.frames`, dtype: 'U8', shape: [x.frames.length, H, W, 3], data });
    }
    tensors.push({ name: `${c.name}.input_ids`, dtype: 'I32', shape: [x.ids.length], data: x.ids });
    tensors.push({ name: `${c.name}.state`, dtype: 'F32', shape: [dims.sMax], data: x.stateNorm });
    tensors.push({ name: `${c.name}.noise`, dtype: 'F32', shape: [dims.hMax, dims.kMax], data: x.noise });
    cases.push({
      name: c.name, world: c.world, embodiment: c.embodiment, level: c.level, seed: c.seed, decision: c.decision,
      images: c.images, prompt_as: c.promptAs ?? null, samples: c.samples, instruction: x.instruction,
      state_raw: x.state, noise_seed: x.noiseSeed, h_e: x.hE, k_e: x.kE,
      cameras: x.frames.map((f) => f.camera),
      image_grids: x.frames.map((f) => [1, f.height / ckpt.preprocessor.patchSize, f.width / ckpt.preprocessor.patchSize]),
    });
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  await writeSafetensors(out, tensors, { parity_inputs: JSON.stringify({ cases, h_max: dims.hMax, k_max: dims.kMax, s_max: dims.sMax }) });
  console.log(`${out}: ${cases.length} cases (${cases.map((c) => c.name).join(', ')})`);
} finally {
  await ckpt.close();
}
