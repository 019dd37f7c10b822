// Prints the WebGPU adapter dawn.node finds, or exits 1 when there is none. Used by tools/setup.sh.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]); // keep referenced: Dawn crashes if this object is collected
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.log('no WebGPU adapter');
  process.exit(1);
}
const i = adapter.info;
console.log(`adapter: ${[i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ')}`);
process.exit(0);
