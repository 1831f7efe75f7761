"""Mixed precision: compute in float16/bfloat16, keep variables and the saved model float32.

``auto`` picks what the hardware runs fastest without changing results that
matter (:func:`resolve_precision`): mixed float16 on a GPU (tensor cores),
bfloat16 on a CPU with bfloat16 matrix units (AMX) or instructions
(AVX512-BF16) — oneDNN then runs the convolutions in bfloat16 — and float32
otherwise. bfloat16 keeps float32's exponent range, so no loss scaling is
needed; its 8-bit mantissa changes pooled features by a cosine of about 1e-5.

A loaded backbone keeps the float32 dtype policy recorded in its file, so for
mixed precision the same architecture is rebuilt under the mixed policy and
given the loaded weights. Training and extraction run on that copy; before a
model is saved its weights go back into the float32 backbone, so a run's
``model.keras`` is float32 whatever it was trained with (predict on a CPU
does not pay for float16 emulation). The head's last layer is always float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from resnet_ft.errors import InputError
from resnet_ft.util.packages import require

if TYPE_CHECKING:
    import keras

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16", "int8")
#: CPU flags (Linux /proc/cpuinfo names) that mean bfloat16 convolutions run natively.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
#: CPU flags that mean int8 multiply-accumulates run natively (VNNI, AMX).
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
#: What computing in int8 needs installed: the engine and its quantiser (extra ``openvino``).
INT8_PACKAGES = ("openvino", "nncf")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no such file)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def gpu_count() -> int:
    """How many GPUs TensorFlow sees."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_precision(requested: str, *, flags: Callable[[], frozenset[str]] = cpu_flags,
                      gpus: Callable[[], int] = gpu_count) -> tuple[str, str]:
    """``(precision, why)``: ``auto`` decided for this machine; anything else as asked."""
    if requested == "int8":
        require_int8()
    if requested != "auto":
        return requested, "as asked"
    if gpus():
        return "mixed_float16", "a GPU is present (float16 on its tensor cores)"
    native = sorted(flags() & BF16_FLAGS)
    if native:
        return "mixed_bfloat16", f"the CPU runs bfloat16 natively ({', '.join(native)})"
    return "float32", "no GPU and no bfloat16 units on this CPU"


def require_int8() -> None:
    """``--precision int8`` without its engine: one line naming what to install."""
    require(INT8_PACKAGES, "--precision int8", "openvino")


def keras_precision(precision: str, *,
                    flags: Callable[[], frozenset[str]] = cpu_flags) -> str:
    """The Keras dtype policy of a precision: int8 runs only the frozen backbone, so what
    TensorFlow computes (the head, unfrozen stages) is what ``auto`` would pick without it."""
    if precision != "int8":
        return precision
    return "mixed_bfloat16" if flags() & BF16_FLAGS else "float32"


@contextlib.contextmanager
def policy(precision: str) -> Iterator[None]:
    """Set Keras' global dtype policy for the models built inside, then restore it."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras_precision(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compute_backbone(backbone: keras.Model, metadata: dict, precision: str) -> keras.Model:
    """The backbone to compute with: itself for float32, else a mixed-policy copy."""
    if keras_precision(precision) == "float32":
        return backbone
    from resnet_ft.models.architectures import build_resnet
    from resnet_ft.models.families import FAMILIES

    if metadata.get("family") not in FAMILIES or "depth" not in metadata:
        raise InputError("--precision: the backbone file does not say its family and depth; "
                         "convert it with this version of resnet-ft")
    with policy(precision):
        mixed = build_resnet(FAMILIES[metadata["family"]], int(metadata["depth"]))
    for layer in mixed.layers:
        if layer.weights:
            layer.set_weights(backbone.get_layer(layer.name).get_weights())
    return mixed


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Weights of the compute copy back into the float32 backbone (same layer names)."""
    if source is target:
        return
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
