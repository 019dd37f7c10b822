// X[row, :] += bilinear, corner-aligned sample of the S×S learned position table at the patch of `row`
// (docs/architecture.md §4.2), for one image of grid (t, gh, gw) whose rows are in merge-block order
// (bh, bw, ih, iw), repeated for each t. Sample point: y = r·(S−1)/max(gh−1, 1) (torch.linspace(0, S−1, gh)),
// x likewise (exactly, in integers); y0 = ⌊y⌋, y1 = min(y0+1, S−1), dy = y − y0; the weights (1−dy)(1−dx),
// (1−dy)dx, dy(1−dx), dy·dx stay f32 (the recent HF code; the release-era code rounded them to the table dtype).
// One workgroup per row (folded over x, y); its invocations stride over the channels.
// Interface generated from POS_EMBED_IO in src/ops/posEmbed.ts: rows = t·gh·gw of this run, side = S, x_off /
// t_off element offsets of the run's first row and of the table.

@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.x + wid.y * P.groups_x;
  if (row >= P.rows) { return; }
  let m = P.merge;
  let p = row % (P.gh * P.gw);           // patch within its frame
  let blk = p / (m * m);
  let sub = p % (m * m);
  let bw_n = P.gw / m;
  let r = (blk / bw_n) * m + sub / m;
  let c = (blk % bw_n) * m + sub % m;
  // y = r·(S−1)/(gh−1) split exactly into integer part y0 and fraction dy = rem/(gh−1) (integer division), so dy
  // carries one rounding instead of the ~ulp(S) error of an f32 y (|Δ| ≲ 1e-7 vs the exact corner-aligned grid).
  let dh = max(P.gh - 1u, 1u);
  let dw = max(P.gw - 1u, 1u);
  let ny = r * (P.side - 1u);
  let nx = c * (P.side - 1u);
  let y0 = ny / dh;
  let x0 = nx / dw;
  let dy = f32(ny % dh) / f32(dh);
  let dx = f32(nx % dw) / f32(dw);
  let y1 = min(y0 + 1u, P.side - 1u);
  let x1 = min(x0 + 1u, P.side - 1u);
  let w00 = (1.0 - dy) * (1.0 - dx);
  let w01 = (1.0 - dy) * dx;
  let w10 = dy * (1.0 - dx);
  let w11 = dy * dx;
  let i00 = P.t_off + (y0 * P.side + x0) * P.C;
  let i01 = P.t_off + (y0 * P.side + x1) * P.C;
  let i10 = P.t_off + (y1 * P.side + x0) * P.C;
  let i11 = P.t_off + (y1 * P.side + x1) * P.C;
  let xo = P.x_off + row * P.C;
  for (var ch = lid.x; ch < P.C; ch += WG_X) {
    let v = w00 * f32(T[i00 + ch]) + w01 * f32(T[i01 + ch]) + w10 * f32(T[i10 + ch]) + w11 * f32(T[i11 + ch]);
    X[xo + ch] += v;
  }
}
