"""The options of everything that runs a trained model over images: predict and evaluate.

Declared once, like the training config (:mod:`resnet_ft.config`): the
command line's ``predict`` and ``evaluate`` options are generated from these
fields, and the Python API takes the same names as keyword arguments,
validated the same way. The defaults (top 5, batches of 32, float32) live here
and nowhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from resnet_ft.config.fields import POSITIVE_INT, Config, merge_layers, one_of, setting
from resnet_ft.errors import InputError
from resnet_ft.models.precision import PRECISIONS


@dataclass(frozen=True)
class InferenceSection:
    """How a trained model is run over many images."""

    TITLE: ClassVar[str] = "Inference"

    top_k: int = setting(5, "How many classes to list, and the k of top-k accuracy",
                         **POSITIVE_INT)
    batch_size: int = setting(32, "Images per batch", **POSITIVE_INT)
    precision: str = setting(
        "float32", "float32 (the default: equals the exported model), or for bulk jobs auto, "
        "mixed_bfloat16 or mixed_float16 (auto as train picks it)", **one_of(PRECISIONS))
    tta: bool = setting(False, "Average each image's probabilities with its mirror's",
                        cli="flag")
    model: str | None = setting(
        None, "An exported model (SavedModel directory, .tflite, .onnx, OpenVINO .xml) to run "
        "instead of RUN's model, through its own runtime", path=True)
    labels: str | None = setting(None, "Class names, one per line, for an ImageNet backbone",
                                 path=True)
    reject: bool = setting(False, "Answer unknown for images beyond the run's reject threshold",
                           cli="flag", note="The share of validation images rejected is "
                           "train's --reject-rate.")


@dataclass(frozen=True)
class InferenceOptions(InferenceSection, Config):
    """Every option of ``predict`` and ``evaluate`` (each command takes the ones it needs)."""

    SECTIONS: ClassVar[tuple[type, ...]] = (InferenceSection,)

    def check(self) -> None:
        """An exported model computes as it was exported: no other precision to choose."""
        if self.reject and (self.model or self.labels):
            raise InputError("--reject needs a run's own model: its reject score is fitted to "
                             "the run's training features")
        if self.model and self.precision != "float32":
            raise InputError("--precision applies to the run's model; an exported --model "
                             "computes as it was exported")


def inference_options(options: InferenceOptions | None = None,
                      **values: Any) -> InferenceOptions:
    """``options`` with ``values`` on top (``None`` means "not given"), validated."""
    base = {} if options is None else dataclasses.asdict(options)
    return merge_layers(InferenceOptions, (base, values))


#: The defaults, for signatures that take one option on its own.
DEFAULTS = InferenceOptions()
