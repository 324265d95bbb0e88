"""Packed weight-only matmuls: the one INT4/INT8 layout (`packing`), plain-torch references
(`reference`), Triton kernels for CUDA (`triton_mm`, imported only where it runs), the torch
custom ops that dispatch between them (`ops`) and the packed linears that export with them
(`linear`)."""
