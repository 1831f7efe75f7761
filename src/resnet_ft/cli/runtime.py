"""TensorFlow start-up for the command line: quiet, once.

TensorFlow's C++ runtime prints INFO lines (oneDNN, CUDA probing) straight to
file descriptor 2 while it is imported and when it first lists devices, before
``TF_CPP_MIN_LOG_LEVEL`` or absl logging settings can apply. A command-line
tool whose errors are one line cannot have that, so the CLI imports
TensorFlow with fd 2 pointed at /dev/null. Library users import TensorFlow
themselves and keep its usual behaviour.
"""

from __future__ import annotations

import os
import sys

from resnet_ft.util.native import native_stderr_discarded


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and initialise its devices with its start-up chatter discarded."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_discarded():
        import tensorflow as tf

        from resnet_ft.training.distribute import configure_logical_cpus

        tf.config.list_physical_devices()
        configure_logical_cpus()
