"""How stored values are encoded: lossless casts, block-scaled low precision, and ZFP.

A codec turns a block of items (k, *item_shape) in the compute dtype into a list of *parts* (the
arrays a store keeps) and back. Arithmetic stays in the compute dtype; only the stored bytes change.
:class:`Cast` and :class:`BlockScaled` encode boundary strips; :class:`ZFP` (lossy floating-point
compression, ``zfpy``) encodes boundary strips per edge segment and chunk checkpoints into byte
strings instead of fixed parts.
"""
from __future__ import annotations

import math
import struct
from typing import Sequence

import numpy as np
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

    def positions(self, cells: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Per part, (trailing dims the item's last axis spans in it, indices there) of the values
        that encode the strip positions ``cells``: what a segment of the strip keeps of each part."""
        return [(1, cells)]


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

    def positions(self, cells: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """As :meth:`Cast.positions`: the codes of ``cells`` and the scales of every block they touch
        (a block shared with another segment is kept by both, with the same scale)."""
        return [(2, cells), (1, np.unique(cells // self.block))]


# -- ZFP ------------------------------------------------------------------------------------------
#: zfp's bound on a stream (``zfp_stream_maximum_size``): a header of at most 148 bits, then per block
#: of 4^d values at most ``1 + exponent bits + 4^d - 1 + 4^d * precision`` bits (float32: 8-bit
#: exponent, 32-bit precision; float64: 11, 64), the whole rounded up to 64-bit words.
ZFP_HEADER_MAX_BITS = 148
_ZFP_TYPE_BITS = {np.dtype(np.float32): (8, 32), np.dtype(np.float64): (11, 64)}
#: Per compressed array: int32 binary exponent of its largest |value|, uint32 stream length.
_RECORD = struct.Struct("<iI")


def zfp_max_stream_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """zfp's own upper bound on the stream (header included) of one array of ``shape``, any mode."""
    ebits, prec = _ZFP_TYPE_BITS[np.dtype(dtype)]
    values = 4 ** len(shape)
    blocks = math.prod(-(-n // 4) for n in shape)
    bits = ZFP_HEADER_MAX_BITS + blocks * (1 + ebits + values - 1 + values * prec)
    return -(-bits // 64) * 8


class ZFP:
    """ZFP compression of float arrays (``zfpy``, on host copies), in fixed-accuracy or fixed-rate mode.

    Each array (a ring of one edge segment's strips for one shot, laid out (time, r * L), or one 2-D
    field of a checkpoint) is scaled by the power of two ``2^-e`` that brings its largest |value| into
    [0.5, 1) (exact; keeps zfp clear of float32's exponent range, where it loses accuracy on tiny
    values), compressed, and stored as a record ``(e, length, zfp stream with header)``.

    Parameters
    ----------
    tolerance : float or None
        Fixed accuracy: every decoded value is within ``tolerance * max|array|`` of the original.
    rate : float or None
        Fixed rate: ``rate`` bits per value (zfp rounds it so that a 4^d block takes whole bits);
        sizes depend on the array shape only. Exactly one of ``tolerance`` and ``rate``.
    """

    def __init__(self, tolerance: float | None = None, rate: float | None = None) -> None:
        if (tolerance is None) == (rate is None):
            raise ValueError("ZFP needs exactly one of tolerance (fixed accuracy) and rate (fixed rate)")
        self.tolerance, self.rate = tolerance, rate
        self.name = f"zfp(tol={tolerance:g})" if rate is None else f"zfp(rate={rate:g})"
        self._rate_sizes: dict[tuple, int] = {}

    @property
    def fixed_rate(self) -> bool:
        return self.rate is not None

    def _compress(self, x: np.ndarray) -> bytes:
        import zfpy

        peak = float(np.abs(x).max()) if x.size else 0.0
        e = math.frexp(peak)[1] if peak > 0 and math.isfinite(peak) else 0
        y = np.ascontiguousarray(np.ldexp(x, -e).astype(x.dtype, copy=False))
        if self.rate is not None:
            stream = zfpy.compress_numpy(y, rate=self.rate)
        else:  # peak * 2^-e in [0.5, 1): tolerance * max|y| in the scaled units
            stream = zfpy.compress_numpy(y, tolerance=self.tolerance * math.ldexp(peak, -e) if peak > 0 else 1.0)
        return _RECORD.pack(e, len(stream)) + stream

    def compress(self, arrays: Sequence[np.ndarray]) -> bytes:
        """One byte string holding ``arrays`` (float32/float64, any shape of 1 to 4 dims), in order."""
        return b"".join(self._compress(a) for a in arrays)

    def decompress(self, blob: bytes | memoryview, count: int) -> list[np.ndarray]:
        """The ``count`` arrays of :meth:`compress`."""
        import zfpy

        out, offset, view = [], 0, memoryview(blob)
        for _ in range(count):
            e, n = _RECORD.unpack_from(view, offset)
            offset += _RECORD.size
            y = zfpy.decompress_numpy(bytes(view[offset:offset + n]))
            offset += n
            out.append(np.ldexp(y, e).astype(y.dtype, copy=False))
        return out

    def max_bytes(self, shapes: Sequence[tuple[int, ...]], dtype) -> int:
        """Bytes of :meth:`compress` of arrays of ``shapes``: exact in fixed-rate mode, an upper bound
        (zfp's stream bound plus the records) in fixed-accuracy mode."""
        dtype = np.dtype(dtype)
        total = 0
        for shape in shapes:
            shape = tuple(int(n) for n in shape)
            if self.rate is None:
                total += _RECORD.size + zfp_max_stream_bytes(shape, dtype)
                continue
            key = (shape, dtype)
            if key not in self._rate_sizes:  # data-independent: measure the zero array once
                self._rate_sizes[key] = len(self._compress(np.zeros(shape, dtype)))
            total += self._rate_sizes[key]
        return total


def make_codec(storage_dtype: str | None, zfp_tolerance: float | None = None,
               zfp_rate: float | None = None) -> Cast | BlockScaled | ZFP:
    """The codec of ``BoundaryOptions.storage_dtype`` (None: the compute dtype, lossless); ``'zfp'``
    takes ``zfp_rate`` (fixed rate) if given, else ``zfp_tolerance`` (fixed accuracy)."""
    if storage_dtype == "zfp":
        return ZFP(tolerance=None if zfp_rate is not None else zfp_tolerance, rate=zfp_rate)
    return {
        None: lambda: Cast("native", None),
        "fp64": lambda: Cast("fp64", torch.float64),
        "fp32": lambda: Cast("fp32", torch.float32),
        "bf16": lambda: Cast("bf16", torch.bfloat16),
        "fp16": lambda: BlockScaled("fp16", torch.float16, FP16_BLOCK),
        "int8": lambda: BlockScaled("int8", torch.int8, INT8_BLOCK),
    }[storage_dtype]()
