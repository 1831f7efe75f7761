"""Top losses: the images the model is most wrong about, ranked, and drawn as one PNG grid.

The loss of an image is the cross-entropy of its true class, ``-log p(true)``
(clipped at 1e-7 like the validation loss): a confident mistake ranks first,
a hesitant right answer late. Ranking by loss rather than by "is it wrong"
is fastai's ``plot_top_losses`` definition; it also shows the shakiest right
answers when a run makes few mistakes. ``train`` writes the grid of its
validation set as ``top_losses.png``; ``report`` shows the same ranking with
heat maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_ft.evaluation.plots import _pyplot
from resnet_ft.util.atomic import atomic_path

#: How many images the grid and the report show by default.
TOP_LOSSES = 12
#: Images per row of the grid.
GRID_COLUMNS = 4
#: The smallest probability a loss is computed from (the validation loss clips the same way).
PROBABILITY_FLOOR = 1e-7


@dataclass(frozen=True)
class TopLoss:
    """One ranked image: what it is, what the model said, and the loss of that."""

    index: int  # position in the evaluated set
    path: Path
    true: str
    predicted: str
    probability: float  # of the predicted class
    p_true: float
    loss: float

    @property
    def wrong(self) -> bool:
        """Whether the prediction is a mistake."""
        return self.true != self.predicted


def image_losses(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``-log p(true class)`` per image."""
    picked = probs[np.arange(len(y_true)), np.asarray(y_true, np.int64)]
    return -np.log(np.clip(picked.astype(np.float64), PROBABILITY_FLOOR, 1.0))


def top_losses(paths: list[Path], y_true: np.ndarray, probs: np.ndarray, labels: list[str],
               n: int = TOP_LOSSES) -> list[TopLoss]:
    """The ``n`` images of largest loss, largest first (ties: the earlier image first)."""
    loss = image_losses(y_true, probs)
    order = np.argsort(-loss, kind="stable")[:n]
    predicted = probs.argmax(axis=1)
    return [TopLoss(int(i), Path(paths[i]), labels[int(y_true[i])], labels[int(predicted[i])],
                    float(probs[i, predicted[i]]), float(probs[i, int(y_true[i])]),
                    float(loss[i])) for i in order]


def plot_top_losses(items: list[TopLoss], path: Path, *, thumb: int = 160) -> None:
    """A grid of the images with ``true -> predicted``, probability and loss (mistakes in red)."""
    from resnet_ft.evaluation.thumbs import thumbnail

    plt = _pyplot()
    rows = max(1, -(-len(items) // GRID_COLUMNS))
    figure, axes = plt.subplots(rows, GRID_COLUMNS, figsize=(2.6 * GRID_COLUMNS, 2.9 * rows),
                                squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
        # no ticks either: tight_layout still lays out a hidden axis's tick labels (40 % of
        # this plot's time, measured; the image is the same pixel for pixel)
        axis.set_xticks([])
        axis.set_yticks([])
    for axis, item in zip(axes.flat, items, strict=False):
        image = thumbnail(item.path, thumb)
        if image is None:
            axis.text(0.5, 0.5, "unreadable", ha="center", va="center")
        else:
            axis.imshow(np.asarray(image))
        axis.set_title(f"{item.true} → {item.predicted}\np={item.probability:.2f}  "
                       f"loss {item.loss:.2f}\n{item.path.name}", fontsize=8,
                       color="#b3261e" if item.wrong else "#1b5e20")
    if not items:
        axes.flat[0].text(0.5, 0.5, "no images", ha="center", va="center")
    figure.suptitle("top losses (true → predicted; red: wrong)", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
