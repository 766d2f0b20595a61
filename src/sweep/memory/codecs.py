"""How stored values are encoded: lossless casts and block-scaled low precision.

A codec turns a block of items (k, *item_shape) in the compute dtype into a list of *parts* (the
arrays a store keeps) and back. Arithmetic stays in the compute dtype; only the stored bytes change.
Codecs are used for boundary strips; checkpoints are always stored losslessly.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .store import Part

#: Values per float32 scale of the block-scaled codecs (along the last axis of an item). int8 with
#: 32-value blocks meets the notebook shot's bounds where 256-value blocks (the reference's) do not;
#: fp16's scale only keeps small amplitudes out of fp16's subnormal range, so long blocks suffice.
INT8_BLOCK = 32
FP16_BLOCK = 256


class Cast:
    """Store in ``dtype`` (lossless when it is the compute dtype or wider)."""

    def __init__(self, name: str, dtype: torch.dtype | None) -> None:
        self.name, self.dtype = name, dtype

    def parts(self, item_shape: tuple[int, ...], compute: torch.dtype) -> list[Part]:
        return [Part("values", tuple(item_shape), self.dtype or compute)]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x if self.dtype is None else x.to(self.dtype)]

    def decode(self, parts: Sequence[torch.Tensor], out: torch.Tensor) -> None:
        out.copy_(parts[0])


class BlockScaled:
    """``dtype`` codes with one float32 scale per ``block`` consecutive values of an item's last axis
    (zero-padded to whole blocks): fp16 codes are ``x / max|block|`` (no underflow of small
    amplitudes), int8 codes are ``round(127 x / max|block|)`` (symmetric)."""

    def __init__(self, name: str, dtype: torch.dtype, block: int) -> None:
        self.name, self.dtype, self.block = name, dtype, block
        self.levels = 127.0 if dtype == torch.int8 else 1.0

    def _blocks(self, n: int) -> int:
        return math.ceil(n / self.block)

    def parts(self, item_shape: tuple[int, ...], compute: torch.dtype) -> list[Part]:
        *lead, n = item_shape
        nb = self._blocks(n)
        return [Part("codes", (*lead, nb, self.block), self.dtype), Part("scales", (*lead, nb), torch.float32)]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = x.shape[-1]
        xb = F.pad(x, (0, self._blocks(n) * self.block - n)).unflatten(-1, (-1, self.block))
        # The scale as stored (float32), used in the compute dtype both ways.
        scale = (xb.abs().amax(-1) / self.levels).to(torch.float32)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale)).to(x.dtype).unsqueeze(-1)
        y = xb / safe
        codes = y.round().clamp_(-127, 127).to(torch.int8) if self.dtype == torch.int8 else y.to(self.dtype)
        return [codes, scale]

    def decode(self, parts: Sequence[torch.Tensor], out: torch.Tensor) -> None:
        codes, scale = parts
        values = codes.to(out.dtype) * scale.to(out.dtype).unsqueeze(-1)
        out.copy_(values.flatten(-2)[..., :out.shape[-1]])


def make_codec(storage_dtype: str | None) -> Cast | BlockScaled:
    """The codec of ``BoundaryOptions.storage_dtype`` (None: the compute dtype, lossless)."""
    return {
        None: lambda: Cast("native", None),
        "fp64": lambda: Cast("fp64", torch.float64),
        "fp32": lambda: Cast("fp32", torch.float32),
        "bf16": lambda: Cast("bf16", torch.bfloat16),
        "fp16": lambda: BlockScaled("fp16", torch.float16, FP16_BLOCK),
        "int8": lambda: BlockScaled("int8", torch.int8, INT8_BLOCK),
    }[storage_dtype]()
