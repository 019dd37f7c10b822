// softmax over rows (kernels/softmax.wgsl): y = softmax(scale · x) along rows of `dim` (default x's last dim).
//
// Same workgroup layout choice as the norms (normWorkgroup): short rows share a workgroup, long rows get 256
// invocations. Numerically stable (online max / sum in f32). `out` may equal x (in place).
import { f, u } from '../gpu/stream.js';
import type { KernelSpec } from '../gpu/pipelines.js';
import { Tensor } from '../tensor.js';
import { checkSameIndexAlias, shapeStr, span } from './bind.js';
import { normWorkgroup } from './norm.js';

export function softmax(x: Tensor, opts: { dim?: number; scale?: number; out?: Tensor } = {}): Tensor {
  const op = 'softmax';
  const gpu = x.gpu;
  const dim = opts.dim ?? x.shape[x.shape.length - 1];
  if (x.dtype !== 'f32') throw new Error(`${op}: x must be f32, got ${shapeStr(x)}`);
  if (!Number.isInteger(dim) || dim <= 0 || x.size % dim !== 0) throw new Error(`${op}: x ${shapeStr(x)} is not a whole number of rows of ${dim}`);
  const rows = x.size / dim;
  const out = opts.out ?? Tensor.empty(gpu, x.shape, 'f32', op);
  if (out.dtype !== 'f32' || out.size !== x.size) throw new Error(`${op}: out ${shapeStr(out)} does not hold x ${shapeStr(x)}`);
  checkSameIndexAlias(op, 'x', x, out);
  if (rows === 0) return out;
  const xViaY = x.buffer === out.buffer;
  const ySpan = span(op, out, ...(xViaY ? [x] : []));
  const xs = xViaY ? null : span(op, x);
  const [wx, wy] = normWorkgroup(dim);
  const spec: KernelSpec = { file: 'softmax', bindings: ['read', 'write'], consts: { X_IS_Y: xViaY }, workgroup: [wx, wy] };
  const groups = Math.ceil(rows / wy);
  const gx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  gpu.stream.dispatch(
    gpu.pipelines.get(spec),
    [xs ? xs.range : { buffer: gpu.dummy }, ySpan.range],
    [u(rows), u(dim), u(xs ? xs.offs[0] : ySpan.offs[1]), u(ySpan.offs[0]), f(opts.scale ?? 1), u(gx)],
    [gx, Math.ceil(groups / gx)],
    op,
  );
  return out;
}
