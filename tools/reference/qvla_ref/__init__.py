"""qvla_ref: independent, plain PyTorch reference implementation of the qvla model
(Qwen3.5 VLM + QVLA-DiT flow-matching action decoder). See tools/reference/README.md."""
