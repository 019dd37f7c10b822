// The random-checkpoint generator's directory rule: it writes only into a new or empty directory or one carrying
// its own stamp, refuses anything else with an error naming the directory, and never deletes a file it did not
// write. (Regression: `qvla bench e2e --checkpoint weights/tiny` deleted weights/tiny/model.safetensors, rewrote its
// config.json and generated a 637 M-parameter checkpoint there.) No GPU: the tiny config, a few MiB.
import { afterAll, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import {
  GeneratorDirError, STAMP_FILE, claimGeneratorDir, ensureSmallCheckpoint, makeRandomCheckpoint, readStamp,
} from '../../src/bench/makeCheckpoint.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { TINY_DIR } from '../../src/testing/fixtures.js';

const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'qvla-gen-test-'));
afterAll(() => fsp.rm(tmp, { recursive: true, force: true }));
const tinyCfg = JSON.parse(await fsp.readFile(path.join(TINY_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;

/** relative path → sha256 of every file under `dir` (recursive). */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[path.relative(dir, p)] = createHash('sha256').update(await fsp.readFile(p)).digest('hex');
    }
  };
  await walk(dir);
  return out;
}

async function copyOfTiny(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await fsp.cp(TINY_DIR, dir, { recursive: true });
  return dir;
}

describe('the generator refuses a directory it did not make', () => {
  it('a copy of weights/tiny: every entry point fails naming the directory, every file stays byte-identical', async () => {
    const dir = await copyOfTiny('tiny-copy');
    const before = await tree(dir);
    expect(Object.keys(before)).toContain('model.safetensors');
    const named = new RegExp(`refusing to write a generated checkpoint into ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: it is not empty .*no ${STAMP_FILE} stamp`);
    for (const call of [
      () => makeRandomCheckpoint(dir, tinyCfg, { shardBytes: 0 }),
      () => ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 0 }),
      () => ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 0, force: true }),
      () => claimGeneratorDir(dir),
    ]) {
      const err = await call().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(GeneratorDirError);
      expect((err as Error).message).toMatch(named);
      expect(await tree(dir)).toEqual(before);
    }
  });

  it('a single foreign file, a file path, and an unreadable stamp are refused too', async () => {
    const one = path.join(tmp, 'one-file');
    await fsp.mkdir(one);
    await fsp.writeFile(path.join(one, 'notes.txt'), 'mine');
    await expect(makeRandomCheckpoint(one, tinyCfg, { shardBytes: 0 })).rejects.toThrow(/one-file: it is not empty \(notes\.txt\)/);
    expect(await fsp.readdir(one)).toEqual(['notes.txt']);

    const file = path.join(tmp, 'a-file');
    await fsp.writeFile(file, 'x');
    await expect(makeRandomCheckpoint(file, tinyCfg, { shardBytes: 0 })).rejects.toThrow(/a-file: it is not a directory/);
    expect(await fsp.readFile(file, 'utf8')).toBe('x');

    const forged = await copyOfTiny('forged-stamp');
    await fsp.writeFile(path.join(forged, STAMP_FILE), 'not json');
    const before = await tree(forged);
    await expect(ensureSmallCheckpoint(forged, { configJson: tinyCfg, shardBytes: 0 })).rejects.toThrow(/forged-stamp: its qvla-bench-checkpoint\.json is not a stamp this generator wrote/);
    expect(await tree(forged)).toEqual(before);
  });
});

describe('a stamped directory is still (re)generated', () => {
  it('new → generated and stamped; reused; regenerated on another seed / layout, removing only its own files', async () => {
    const dir = path.join(tmp, 'gen', 'nested'); // created, parents included
    const a = await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 0 });
    expect(a.generated).toBe(true);
    const stamp = (await readStamp(dir))!;
    expect(stamp.complete).toBe(true);
    expect(stamp.files).toEqual(['model.safetensors', 'config.json', 'tokenizer.json', 'embodiments.json', 'preprocessor_config.json']);
    expect((await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 0 })).generated).toBe(false);

    // a file the user put there survives every regeneration
    await fsp.writeFile(path.join(dir, 'notes.txt'), 'keep me');
    const first = await tree(dir);
    const b = await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 0, seed: 1 });
    expect(b.generated).toBe(true);
    const second = await tree(dir);
    expect(second['model.safetensors']).not.toBe(first['model.safetensors']);
    expect(second['notes.txt']).toBe(first['notes.txt']);

    // sharded now (another seed, so the stamp differs): the old single file (listed in the stamp) goes, the
    // index and shards come
    const c = await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 1 << 20, seed: 2 });
    expect(c.generated).toBe(true);
    const names = await fsp.readdir(dir);
    expect(names).not.toContain('model.safetensors');
    expect(names).toContain('model.safetensors.index.json');
    expect(names).toContain('notes.txt');
    const ck = await openCheckpoint(dir, { requireEmbodiments: true });
    ck.bind();
    await ck.close();

    // force regenerates a matching one
    expect((await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 1 << 20, seed: 2 })).generated).toBe(false);
    expect((await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 1 << 20, seed: 2, force: true })).generated).toBe(true);
    expect(await fsp.readFile(path.join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
  });

  it('an incomplete stamp (a crashed run) is regenerated; a version-1 stamp (no file list) removes only generator-named files', async () => {
    const dir = path.join(tmp, 'crashed');
    await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 0 });
    const stamp = (await readStamp(dir))!;
    await fsp.writeFile(path.join(dir, STAMP_FILE), JSON.stringify({ ...stamp, complete: false }));
    expect((await ensureSmallCheckpoint(dir, { configJson: tinyCfg, shardBytes: 0 })).generated).toBe(true);
    expect((await readStamp(dir))!.complete).toBe(true);

    const v1 = path.join(tmp, 'v1');
    await ensureSmallCheckpoint(v1, { configJson: tinyCfg, shardBytes: 0 });
    const { stamp: _v, complete: _c, files: _f, ...old } = (await readStamp(v1))!;
    await fsp.writeFile(path.join(v1, STAMP_FILE), JSON.stringify(old));
    await fsp.writeFile(path.join(v1, 'other.safetensors'), 'not the generator\'s');
    await ensureSmallCheckpoint(v1, { configJson: tinyCfg, shardBytes: 1 << 20, seed: 2 });
    const names = await fsp.readdir(v1);
    expect(names).toContain('other.safetensors');
    expect(names).not.toContain('model.safetensors');
    expect(await fsp.readFile(path.join(v1, 'other.safetensors'), 'utf8')).toBe('not the generator\'s');
  });

  it('an empty existing directory is accepted', async () => {
    const dir = path.join(tmp, 'empty');
    await fsp.mkdir(dir);
    const made = await makeRandomCheckpoint(dir, tinyCfg, { shardBytes: 0 });
    expect(made.files).toContain('model.safetensors');
    expect((await readStamp(dir))!.files).toEqual(made.files);
  });
});
