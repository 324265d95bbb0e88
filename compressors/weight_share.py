"""Weight sharing (Han et al., Deep Compression, 2016): per layer, k-means over the
weights with 2^bits centroids (linear initialisation, as the paper found best); every
weight becomes its centroid. Zeros left by pruning stay zero and take one of the values.

The artifact stores such a layer as a codebook plus bit-packed indices (see the ort_cpu
runtime's `compact_weights`), so `size_bytes` shows the saving. The stage also reports
the bytes of those indices bit-packed (`packed_index_bytes`) and Huffman-coded
(`huffman_index_bytes`): what entropy coding the shipped file would save on top.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.huffman import coded_bytes
from slimsweep.compressors.magnitude_prune import prunable_weights
from slimsweep.sweeps.errors import require_choice, require_range


@dataclass(frozen=True)
class WeightShareConfig:
    bits: int = 4  # 2^bits shared values per layer
    iterations: int = 30  # k-means (Lloyd) iterations
    # which tensors: all | embeddings (a transformer's largest, and most forgiving) | layers
    tensors: str = "all"

    def __post_init__(self) -> None:
        require_range("bits", self.bits, 1, 8)
        require_range("iterations", self.iterations, 1, 1000)
        require_choice("tensors", self.tensors, ("all", "embeddings", "layers"))


def kmeans_1d(
    values: torch.Tensor, clusters: int, iterations: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids (sorted) and each value's cluster, by Lloyd's algorithm from a linear
    initialisation between the extremes."""
    centroids = torch.linspace(
        float(values.min()), float(values.max()), clusters, dtype=values.dtype
    )
    for _ in range(iterations):
        assignment = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, values)
        counts = torch.bincount(assignment, minlength=clusters).to(values.dtype)
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        centroids, previous = updated.sort().values, centroids
        if torch.equal(centroids, previous):
            break
    return centroids, torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)


def share(weight: torch.Tensor, bits: int, iterations: int) -> np.ndarray:
    """Replace `weight` in place by its shared values; returns each element's index."""
    flat = weight.detach().reshape(-1)
    kept = flat != 0
    clusters = 2**bits - int(not bool(kept.all()))  # zeros, when present, are one value
    values = flat[kept]
    if len(values) <= clusters:
        return np.unique(flat.numpy(), return_inverse=True)[1]
    centroids, assignment = kmeans_1d(values.double(), clusters, iterations)
    shared = torch.zeros_like(flat)
    shared[kept] = centroids[assignment].to(flat.dtype)
    with torch.no_grad():
        weight.copy_(shared.view_as(weight))
    return np.unique(shared.numpy(), return_inverse=True)[1]


@register_stage("weight_share", WeightShareConfig)
def weight_share(
    model: CompressedModel, config: WeightShareConfig, ctx: StageContext
) -> CompressedModel:
    packed = huffman = 0
    weights = prunable_weights(model.module) if config.tensors != "embeddings" else []
    if config.tensors != "layers":
        weights += [m.weight for m in model.module.modules() if isinstance(m, torch.nn.Embedding)]
    if not weights:
        raise ValueError(f"weight_share found no tensors to share (tensors={config.tensors!r})")
    for weight in weights:
        indices = share(weight, config.bits, config.iterations)
        alphabet = int(indices.max()) + 1
        packed += max(1, math.ceil(math.log2(alphabet))) * math.ceil(indices.size / 8)
        huffman += coded_bytes(indices, alphabet)
    model.metrics["packed_index_bytes"] = float(packed)
    model.metrics["huffman_index_bytes"] = float(huffman)
    return model
