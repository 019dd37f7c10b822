// Activation codes shared by every kernel that fuses an activation (see kernels/lib/activations.wgsl).
export const ACT = { none: 0, silu: 1, gelu_tanh: 2, gelu_erf: 3, relu: 4, sigmoid: 5, softplus: 6 } as const;
export type Activation = keyof typeof ACT;
