"""The training run directory as its writer sees it: one writer, a clean start, resumable state."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.errors import InputError, OutputError
from resnet_ft.runs.run import RUN_FILES, Run
from resnet_ft.util.atomic import atomic_path, write_text

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN_DIR/.lock`` exclusively while a process writes the run directory.

    Two ``train`` processes on one run directory (a job relaunched while the
    old one still runs) would rotate each other's state files away. An
    ``flock`` is released by the kernel when its process dies, kill -9
    included, so a crashed run never leaves a lock that blocks ``--resume``.
    The file holds the writer's pid, for the refusal message. A directory this
    call had to create is removed again if the run left nothing else in it.
    """
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise OutputError(f"cannot write to {run_dir}: {exc.strerror or exc}") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise InputError(f"run directory {run_dir} is being written by another resnet-ft "
                             f"process (pid {owner}); wait for it or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                shutil.rmtree(run_dir, ignore_errors=True)


def prepare_run_dir(run: Run, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run into an old one unless told to."""
    run_dir = run.path
    if resume:
        if not (run.state_dir / "state.json").is_file():
            raise InputError(f"--resume: {run_dir} holds no resumable training state")
        return
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        if not overwrite:
            raise InputError(
                f"run directory {run_dir} is not empty; use --resume to continue it "
                "or --overwrite to replace it"
            )
        for name in RUN_FILES:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


class RunState:
    """Versioned per-epoch files under ``RUN_DIR/state``; ``state.json`` commits them."""

    def __init__(self, run: Run) -> None:
        self.dir = run.state_dir
        self.dir.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.dir / "state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def commit(self, epoch: int, head, optimizer, state: dict[str, Any], best: bool) -> None:
        weights = self.dir / f"head-{epoch}.weights.h5"
        with atomic_path(weights, suffix=".weights.h5") as tmp:
            head.save_weights(tmp)
        if best:  # the same bytes: a copy, not a second serialisation
            with atomic_path(self.dir / f"best-{epoch}.weights.h5") as tmp:
                shutil.copyfile(weights, tmp)
        with atomic_path(self.dir / f"optimizer-{epoch}.npz") as tmp, open(tmp, "wb") as out:
            np.savez(out, *[np.asarray(v) for v in optimizer.variables])
        write_text(self.dir / "state.json", json.dumps(state, indent=2))
        keep = {f"head-{epoch}.weights.h5", f"optimizer-{epoch}.npz",
                f"best-{state['best_epoch']}.weights.h5", "state.json"}
        for stale in self.dir.iterdir():  # older epochs, and temp files of a killed writer
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def restore(self, state: dict[str, Any], head, optimizer) -> None:
        """The committed epoch's weights and optimizer state, but the run's own learning rate.

        The rate is the config's (``--resume --lr LOWER`` after a divergence must train
        at the lower rate), not the one the optimizer stored.
        """
        head.load_weights(self.dir / f"head-{state['epoch']}.weights.h5")
        if not optimizer.built:
            optimizer.build(head.trainable_variables)
        with np.load(self.dir / f"optimizer-{state['epoch']}.npz", allow_pickle=False) as saved:
            for index, variable in enumerate(optimizer.variables):
                if not variable.path.endswith("learning_rate"):
                    variable.assign(saved[f"arr_{index}"])

    def best_weights(self, state: dict[str, Any]) -> Path:
        return self.dir / f"best-{state['best_epoch']}.weights.h5"
