// The module the browser build generates from kernels/**/*.wgsl: file name without extension ("linear",
// "lib/reduce") → WGSL source.
declare module 'qvla:kernels' {
  const sources: Readonly<Record<string, string>>;
  export default sources;
}
