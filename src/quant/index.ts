// Weight-only int8 / int4 quantisation (docs/quantization.md).
export { QuantizedTensor, isQuantized, dequantize, type QuantizedHost } from './tensor.js';
export { linearQuantized } from './linear.js';
