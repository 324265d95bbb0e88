"""Packed INT8/INT4 matmul kernels (Triton for GPU, plain-torch reference) live here."""
