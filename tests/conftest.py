"""Session-wide fixtures: expensive things (ResNet builds, reference graphs) are made once."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from support.cli import SMALL, CliResult

from resnet_ft.cli import main


def _share_the_cores() -> None:
    """Give each xdist process its share of the cores for TensorFlow's and BLAS's threads.

    TensorFlow sizes its intra- and inter-op pools by the machine's cores, so two test
    processes on two cores each run two pools of two threads and preempt each other.
    With one thread each, two concurrent sequences of five train runs took 35 s against
    39 s, and tests/e2e/test_finetune.py with test_export.py (-n 2, coverage) 147 s
    against 153 s. OpenBLAS (NumPy: the reject scorer's 2048-wide covariance) likewise:
    its whitening took 0.34-0.40 s on one thread beside a busy core, 0.50-0.72 s on two.
    OpenMP's pools (torch's references, faiss) get the same share. NumPy is loaded before
    this file, so its pool is resized in place; child processes inherit the environment.
    A value already in the environment wins.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OPENBLAS_NUM_THREADS",
                 "OMP_NUM_THREADS"):
        os.environ.setdefault(name, share)
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")


_share_the_cores()

pytest_plugins = ["support.schedule"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Take what the imports made out of the garbage collector's sight, and collect less often.

    TensorFlow, Keras and the test modules leave ~620,000 objects that live as long
    as the process; every full collection walked them all again. Frozen after
    collection, with a young generation of 10,000 objects instead of 700, the
    collector's time in tests/e2e/test_train.py with test_cache.py went from
    4.4-4.6 s to 1.7-2.4 s (of ~60 s). Objects made by tests are collected as before.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])


@pytest.fixture(scope="session", autouse=True)
def children_measured() -> Iterator[None]:
    """Child Python processes measure coverage too, when ``make test`` collects it.

    ``COVERAGE_PARTS`` (set by the Makefile) names the folder the parts go to;
    support/child_coverage/sitecustomize.py starts SlipCover in each child. Set here,
    in a fixture, so that only the processes that run tests pass it on: xdist's
    workers themselves are measured by SlipCover's own pytest plugin.
    """
    if not os.environ.get("COVERAGE_PARTS"):
        yield
        return
    import resnet_ft

    folder = Path(__file__).parent / "support" / "child_coverage"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(folder), prepend=os.pathsep)
        patch.setenv("COVERAGE_SOURCE", str(Path(resnet_ft.__file__).parent))
        yield


@pytest.fixture(scope="session", autouse=True)
def maps_by_pca() -> Iterator[None]:
    """Reports lay their map out by PCA, whatever is installed.

    UMAP's numba kernels compile in every process that first uses them (~17 s
    here, for a 40-point map), and no report test checks the layout method;
    UMAP itself is tested by name in tests/unit/test_data_map.py, and the
    choice of method there too.
    """
    from resnet_ft.features import projection

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection, "default_method", lambda: "pca")
        yield


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``resnet-ft ARGS...`` in this process and capture its output."""

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory) -> Iterator[Callable[[str], Path]]:
    """``mktemp`` for module-scoped fixtures, whose folders go when the module ends.

    A run directory holds a whole ResNet (about 200 MB); kept to the end of the
    session, the suite's module fixtures alone took 9 GB and filled a CI disk.
    """
    made: list[Path] = []

    def mktemp(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["compiled", "eager"])
def execution(request):
    """Run ``tf.function`` bodies compiled (as the product does) and as plain Python.

    AutoGraph rewrites a compiled body before it runs, so the two can disagree
    (a Python ``if`` on a tensor, a list mutated in a loop); a test that passes
    both ways checks the source as written against its reference. Eager runs are
    also the only ones in which coverage sees those bodies' lines.
    """
    import tensorflow as tf

    tf.config.run_functions_eagerly(request.param == "eager")
    yield request.param
    tf.config.run_functions_eagerly(False)


def made_once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """A folder that ``make(folder)`` fills once per test session, for every xdist worker.

    Writing and converting a stand-in ResNet took 4-11 s in this suite's profiles (the
    checkpoint is calibrated layer by layer), and both workers need them; the first to
    ask builds while the other waits on the lock, and reads the finished files. Only the
    tests' own session shares the folder (xdist's workers live in one ``pytest-N``
    directory); tests only ever read it.
    """
    import fcntl

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def standin_checkpoint(tmp_path_factory):
    """A random-weight resnet_v1_101 checkpoint in the official format (written once)."""
    from resnet_ft.conversion.standin import write_standin_checkpoint

    folder = made_once(tmp_path_factory, "ckpt101",
                       lambda out: write_standin_checkpoint(out / "resnet_v1_101.ckpt", 101))
    return folder / "resnet_v1_101.ckpt"


@pytest.fixture(scope="session")
def backbone101(standin_checkpoint, tmp_path_factory):
    """The stand-in checkpoint converted to a slim ResNet-101 backbone file (with top)."""
    from resnet_ft.conversion.converter import convert

    folder = made_once(tmp_path_factory, "backbone101", lambda out: convert(
        standin_checkpoint, out / "resnet_v1_101.keras", include_top=True))
    return folder / "resnet_v1_101.keras"


@pytest.fixture(scope="session")
def backbone50(tmp_path_factory):
    """A slim ResNet-50 stand-in backbone (no top): for tests that do not depend on the depth.

    Building, loading, folding and tracing cost about half of ResNet-101's, and most
    tests run several ``train`` calls.
    """
    from resnet_ft.conversion.converter import convert
    from resnet_ft.conversion.standin import write_standin_checkpoint

    def make(folder: Path) -> None:
        convert(write_standin_checkpoint(folder / "resnet_v1_50.ckpt", 50),
                folder / "resnet_v1_50.keras")

    return made_once(tmp_path_factory, "backbone50", make) / "resnet_v1_50.keras"


@pytest.fixture(scope="session")
def flowers(tmp_path_factory):
    """5 classes x 8 small generated JPEGs in the flower_photos layout."""
    from resnet_ft.data.standin import write_standin_images

    return write_standin_images(
        tmp_path_factory.mktemp("data") / "flowers", per_class=8, min_size=40, max_size=80
    )


@pytest.fixture(scope="session")
def trained(flowers, backbone50, tmp_path_factory):
    """One small run (flip augmentation on) shared by read-only tests: (run dir, cache dir).

    On the ResNet-50 stand-in: its readers load the run's classifier again and again, and
    nothing they check depends on the depth (the ResNet-101 paths have their own tests).
    """
    run = tmp_path_factory.mktemp("runs") / "flowers"
    cache = tmp_path_factory.mktemp("cache")
    args = ["train", flowers, "--backbone", backbone50, "-o", run, "--epochs", 3,
            "--val-split", 0.25, "--cache-dir", cache, *SMALL]
    assert main([str(a) for a in args]) == 0
    return run, cache
