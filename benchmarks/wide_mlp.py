"""A stack of wide linears with synthetic weights: the shape weight-only kernels are for."""

import torch


class WideMlp(torch.nn.Module):
    def __init__(self, width: int = 4096, layers: int = 4) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.nn.functional.gelu(layer(x))
        return x
