"""numpy arrays on the engine's wire: one struct (dtype, shape, bytes) that both sides read."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import msgspec

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

DType = Literal["float32", "uint8"]
ITEM_BYTES: dict[str, int] = {"float32": 4, "uint8": 1}


class Array(msgspec.Struct, frozen=True):
    """An n-dimensional array in C order; checked where it is decoded, so that a short or long
    buffer is a bad message, never a reshape error further on."""

    dtype: DType
    shape: tuple[int, ...]
    data: bytes

    def __post_init__(self) -> None:
        if any(side < 0 for side in self.shape):
            raise ValueError(f"an array's shape cannot be negative: {self.shape}")
        expected = math.prod(self.shape) * ITEM_BYTES[self.dtype]
        if len(self.data) != expected:
            raise ValueError(
                f"a {self.dtype} array of shape {self.shape} is {expected} bytes, "
                f"not {len(self.data)}"
            )


def pack(values: ArrayLike, dtype: DType = "float32") -> Array:
    """`values` as `dtype`, ready to send."""
    import numpy as np

    array = np.ascontiguousarray(values, dtype)
    return Array(dtype, tuple(int(side) for side in array.shape), array.tobytes())


def unpack(array: Array, *shape: int | None) -> np.ndarray:
    """The numpy array (read-only, sharing the message's bytes), after checking that it has the
    `shape` the caller expects, None for any length on that axis.

    Raises:
        ValueError: the array has another number of axes or another length on one; one
            sentence.
    """
    import numpy as np

    if shape and (
        len(shape) != len(array.shape)
        or any(
            want is not None and want != got for want, got in zip(shape, array.shape, strict=True)
        )
    ):
        wanted = " x ".join("n" if side is None else str(side) for side in shape)
        got = " x ".join(str(side) for side in array.shape) or "a scalar"
        raise ValueError(f"expected a {wanted} array, got {got}")
    return np.frombuffer(array.data, array.dtype).reshape(array.shape)
