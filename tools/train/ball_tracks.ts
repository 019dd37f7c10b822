// Dumps Level-A ball episodes for the trajectory-ceiling study (tools/train/ball_ceiling.py): per seed the
// motion family, the true observed + future positions, and the observed positions as a simple colour-keyed
// reader recovers them from the very frame the policy sees. Usage:
//   node dist/tools/train/ball_tracks.js --from 0 --count 10000 --out data/ball-tracks-train.json
import { writeFileSync } from 'node:fs';
import { BallWorld, OBSERVED } from '../../src/worlds/ball.js';
import { Canvas, COLORS } from '../../src/worlds/canvas.js';
import type { RgbImage } from '../../src/preprocess/image.js';

const BG = [24, 26, 34] as const;
// trail drawing order and alphas as in src/worlds/ball.ts render(): oldest first, the current ball opaque
const ALPHA = [0.22, 0.4, 0.65, 1];

/** The exact colour each trail dot gets where it lies on bare background (same blend code as the renderer). */
function dotColours(): string[] {
  return ALPHA.map((a) => {
    const c = new Canvas(1, 1, BG);
    if (a >= 1) c.set(0, 0, COLORS.yellow);
    else c.blend(0, 0, COLORS.yellow, a);
    return Array.from(c.data).join(',');
  });
}

/**
 * Observed positions read from the frame: the centroid of the pixels of each dot's exact colour. Pixels where
 * dots overlap take a mixed colour and are not counted, so an overlapped dot's centroid is biased (and a dot
 * hidden under the ball is lost: null). This is what an exact-colour reader gets, not a bound.
 */
function readTrail(img: RgbImage): ([number, number] | null)[] {
  const keys = dotColours();
  const sum = keys.map(() => [0, 0, 0]);
  const { width: W, height: H, data } = img;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = 3 * (y * W + x);
      const k = keys.indexOf(`${data[o]},${data[o + 1]},${data[o + 2]}`);
      if (k < 0) continue;
      sum[k]![0]! += x + 0.5;
      sum[k]![1]! += y + 0.5;
      sum[k]![2]! += 1;
    }
  }
  return sum.map(([sx, sy, n]) => (n! < 1 ? null : [sx! / n! / W, 1 - sy! / n! / H]));
}

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (dflt === undefined) throw new Error(`ball_tracks: missing --${name}`);
    return dflt;
  }
  return process.argv[i + 1]!;
}

const from = Number(arg('from')), count = Number(arg('count')), out = arg('out');
if (!Number.isInteger(from) || !Number.isInteger(count) || count < 1) throw new Error('ball_tracks: --from and --count must be integers, --count ≥ 1');
const rows = [];
for (let s = from; s < from + count; s++) {
  const w = new BallWorld('A', s);
  const t = w.tracks[0]!;
  rows.push({ seed: s, motion: t.motion, pts: t.pts, read: readTrail(w.observe().images[0]!.image), observed: OBSERVED });
}
writeFileSync(out, JSON.stringify(rows));
console.error(`ball_tracks: ${count} episodes (seeds ${from}…${from + count - 1}) -> ${out}`);
