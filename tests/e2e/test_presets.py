"""Presets: a checkpoint by name, fetched once (from a mirror here), checked, converted, cached.

No test touches the internet: ``RESNET_FT_MIRROR`` points every download at a
local HTTP server (tests/support/http_server.py) that serves random-weight
checkpoints in the official formats at ``BASE/<NAME>/<FILE>``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from support.http_server import LocalServer, server_fixture  # noqa: F401 - the `server` fixture
from support.numeric import relative_error

from resnet_ft.models.files import load_backbone

#: The names of the issue, in catalog order.
NAMES = [
    "slim/resnet_v1_50", "slim/resnet_v1_101", "slim/resnet_v1_152",
    "slim/resnet_v2_50", "slim/resnet_v2_101", "slim/resnet_v2_152",
    "keras/resnet50", "keras/resnet101", "keras/resnet152",
    "keras/resnet50v2", "keras/resnet101v2", "keras/resnet152v2",
    "timm/resnet50.tv_in1k", "timm/resnet101.tv_in1k", "timm/resnet152.tv_in1k",
    "timm/resnet50.tv2_in1k", "timm/resnet101.tv2_in1k", "timm/resnet50.a1_in1k",
    "timm/resnetv2_50x1_bit.goog_in21k", "timm/resnetv2_101x1_bit.goog_in21k",
    "bit/BiT-M-R50x1", "bit/BiT-M-R101x1",
]
TIMM = "timm/resnet50.tv_in1k"
TIMM_PATH = f"{TIMM}/model.safetensors"
SLIM_PATH = "slim/resnet_v1_50/resnet_v1_50_2016_08_28.tar.gz"


def _error_lines(err: str) -> list[str]:
    """The ``error:`` lines (a download's progress bar may precede them)."""
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def mirror(server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LocalServer:
    """Every preset download goes to the local server; the default cache is the test's own."""
    monkeypatch.setenv("RESNET_FT_MIRROR", server.base_url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return server


@pytest.fixture(scope="module")
def torch50(module_tmp):
    """A randomised torchvision ResNet-50 saved as safetensors, and its outputs (plain torch)."""
    from support.torch_reference import make_reference

    return make_reference(module_tmp("torch50"), 50, (64,))


def test_list_shows_every_name_with_the_publishers_facts(cli) -> None:
    from keras.src.applications.resnet import WEIGHTS_HASHES

    listed = cli("convert", "--list", "--json")
    assert listed.code == 0, listed.err
    rows = json.loads(listed.out)
    assert [row["name"] for row in rows] == NAMES
    by_name = {row["name"]: row for row in rows}
    for depth in (50, 101, 152):  # the md5 Keras itself checks its downloads with
        for version in ("", "v2"):
            assert by_name[f"keras/resnet{depth}{version}"]["checksum"] == (
                f"md5 {WEIGHTS_HASHES[f'resnet{depth}{version}'][0]}")
    assert by_name["keras/resnet152v2"]["family"] == "keras_v2"
    assert by_name["keras/resnet101v2"]["url"] == (
        "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
        "resnet101v2_weights_tf_dim_ordering_tf_kernels.h5")
    assert by_name["slim/resnet_v1_101"]["top1"] == 76.4
    assert by_name["timm/resnet50.tv2_in1k"]["top1"] == 80.858
    assert by_name["timm/resnet50.a1_in1k"]["top1"] is None
    assert by_name["slim/resnet_v2_152"]["classes"] == 1001  # with slim's background class
    assert by_name["bit/BiT-M-R101x1"]["url"] == (
        "https://storage.googleapis.com/bit_models/BiT-M-R101x1.npz")
    assert {row["bytes"] for row in rows} == {None}  # nothing downloaded here yet
    table = cli("convert", "--list")
    assert table.code == 0
    assert all(name in table.out for name in NAMES)
    assert f"https://huggingface.co/{TIMM}/resolve/main/model.safetensors" in table.out


def test_a_timm_preset_is_fetched_once_pinned_and_converted_exactly(
        cli, mirror: LocalServer, torch50, tmp_path: Path) -> None:
    payload = torch50.files["safetensors"].read_bytes()
    mirror.state.files[TIMM_PATH] = payload
    cache = tmp_path / "cache"
    result = cli("convert", TIMM, "-o", tmp_path / "a.keras", "--include-top", "--cache-dir", cache)
    assert result.code == 0, result.err
    digest = hashlib.sha256(payload).hexdigest()
    assert f"recorded sha256 {digest}" in result.err
    assert result.err.count(digest) == 1  # computed and shown once, by the preset cache
    ours = np.asarray(load_backbone(tmp_path / "a.keras")(torch50.images[64]))
    assert relative_error(ours, torch50.features[64]) <= 1e-4
    digests = cache / "weights" / "digests.json"
    assert json.loads(digests.read_text()) == {TIMM: {
        "sha256": digest, "bytes": len(payload),
        "url": "https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors"}}
    listed = json.loads(cli("convert", "--list", "--json", "--cache-dir", cache).out)
    assert [row["bytes"] for row in listed if row["name"] == TIMM] == [len(payload)]

    again = cli("convert", TIMM, "-o", tmp_path / "b.keras", "--cache-dir", cache)
    assert again.code == 0 and mirror.state.hits == 1  # served from the cache

    # A later download must match the first one's digest, and leaves nothing when it does not.
    (cache / "weights" / "timm--resnet50.tv_in1k" / "model.safetensors").unlink()
    mirror.state.files[TIMM_PATH] = payload[:-1] + bytes([payload[-1] ^ 1])
    refused = cli("convert", TIMM, "-o", tmp_path / "c.keras", "--cache-dir", cache)
    assert refused.code != 0
    assert _error_lines(refused.err) == [refused.err.splitlines()[-1]]
    assert refused.err.splitlines()[-1].startswith("error: checksum mismatch for http://")
    assert f"expected sha256 {digest}" in refused.err
    assert not (cache / "weights" / "timm--resnet50.tv_in1k").exists()
    assert not (tmp_path / "c.keras").exists()
    assert json.loads(digests.read_text())[TIMM]["sha256"] == digest


@pytest.mark.parametrize(("name", "md5"), [("resnet50", "2cb95161c43110f7111970584f804107"),
                                         ("resnet101v2", "6343647c601c52e1368623803854d971")])
def test_a_published_md5_refuses_other_bytes_and_keeps_nothing(
        cli, mirror, tmp_path, name, md5) -> None:
    mirror.state.files[f"keras/{name}/{name}_weights_tf_dim_ordering_tf_kernels.h5"] = (
        b"\x89HDF\r\n\x1a\n" + bytes(1000))
    result = cli("convert", f"keras/{name}", "-o", tmp_path / "k.keras")
    assert result.code != 0
    assert f"expected md5 {md5}" in result.err
    assert len(_error_lines(result.err)) == 1
    weights = tmp_path / "xdg" / "resnet-ft" / "weights"  # the default cache, under XDG
    assert sorted(p.name for p in weights.iterdir()) == [".lock"]


def test_a_slim_preset_trains_by_name_and_later_runs_reuse_it(
        cli, mirror, flowers, backbone50, tmp_path) -> None:
    # the release holds the stand-in checkpoint that backbone50 is the direct conversion of
    checkpoint = sorted(backbone50.parent.glob("resnet_v1_50.ckpt.*"))
    assert [path.suffix for path in checkpoint] == [".data-00000-of-00001", ".index"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in checkpoint:
            tar.add(path, arcname=path.name)
    mirror.state.files[SLIM_PATH] = buffer.getvalue()
    cache, run = tmp_path / "cache", tmp_path / "run"
    result = cli("train", flowers, "--backbone", "slim/resnet_v1_50", "-o", run, "--epochs", 1,
                 "--cache-dir", cache, "--image-size", 48, "--batch-size", 8,
                 "--precision", "float32")
    assert result.code == 0, result.err
    cached = cache / "weights" / "slim--resnet_v1_50"
    assert sorted(p.name for p in cached.iterdir()) == [
        "backbone.keras", "resnet_v1_50.ckpt.data-00000-of-00001", "resnet_v1_50.ckpt.index"]
    for ours, direct in zip(load_backbone(cached / "backbone.keras").get_weights(),
                            load_backbone(backbone50).get_weights(), strict=True):
        np.testing.assert_array_equal(ours, direct)
    assert "backbone: slim/resnet_v1_50\n" in (run / "config.yaml").read_text()
    image = next(flowers.glob("*/*.jpg"))
    assert cli("predict", run, image, "--json").code == 0
    assert mirror.state.hits == 1


@pytest.mark.parametrize("command", ["train", "doctor", "sweep", "distill"])
def test_every_command_taking_a_backbone_takes_a_name(cli, mirror, flowers, tmp_path, command,
                                                      request):
    teacher = request.getfixturevalue("trained")[0] if command == "distill" else None
    args = {"train": ["train", flowers, "-o", tmp_path / "r", "--backbone"],
            "doctor": ["doctor", flowers, "-o", tmp_path / "d", "--backbone"],
            "sweep": ["sweep", flowers, "-o", tmp_path / "s", "--backbone"],
            "distill": ["distill", teacher, flowers, "-o", tmp_path / "t", "--student"]}[command]
    result = cli(*args, "slim/resnet_v1_5O")
    assert result.code == 2
    assert result.err == ("error: unknown preset 'slim/resnet_v1_5O' and no such file; did you "
                          "mean slim/resnet_v1_50, slim/resnet_v1_152, slim/resnet_v2_50? "
                          "(resnet-ft convert --list shows the names)\n")


def test_offline_says_where_to_put_the_file_and_a_placed_file_is_used(
        monkeypatch, tmp_path, torch50) -> None:
    from resnet_ft.errors import ResnetFtError
    from resnet_ft.presets.cache import fetch_checkpoint, resolve_backbone
    from resnet_ft.presets.catalog import find_preset

    monkeypatch.setenv("RESNET_FT_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    folder = tmp_path / "weights" / "timm--resnet50.tv_in1k"
    with pytest.raises(ResnetFtError) as caught:
        fetch_checkpoint(find_preset(TIMM), tmp_path, retries=0)
    message = str(caught.value)
    assert message.startswith("cannot download http://127.0.0.1:9/" + TIMM_PATH)
    assert message.endswith(f"; without internet access, put model.safetensors in {folder} or "
                            f"set RESNET_FT_MIRROR=BASE to fetch BASE/{TIMM_PATH}")
    assert "\n" not in message and not folder.exists()

    folder.mkdir(parents=True)  # what the message says: no network needed afterwards
    (folder / "model.safetensors").write_bytes(torch50.files["safetensors"].read_bytes())
    backbone = resolve_backbone(TIMM, tmp_path)
    assert backbone == folder / "backbone.keras"
    ours = np.asarray(load_backbone(backbone)(torch50.images[64]))
    assert relative_error(ours, torch50.features[64]) <= 1e-4


def test_an_interrupted_download_resumes_where_it_stopped(mirror, tmp_path) -> None:
    from resnet_ft.presets.cache import fetch_checkpoint
    from resnet_ft.presets.catalog import find_preset

    payload = bytes(range(256)) * 4000
    mirror.state.files[TIMM_PATH] = payload
    mirror.state.drop_next = 1  # the first answer hangs up after a third of the body
    path = fetch_checkpoint(find_preset(TIMM), tmp_path, retries=1)
    assert path.read_bytes() == payload
    assert mirror.state.ranges() == [None, f"bytes={len(payload) // 3}-"]


def test_two_processes_asking_at_once_download_once(mirror, tmp_path) -> None:
    from resnet_ft.presets.cache import fetch_checkpoint
    from resnet_ft.presets.catalog import find_preset

    mirror.state.files[TIMM_PATH] = bytes(range(256)) * 4000
    paths: list[Path] = []
    workers = [threading.Thread(target=lambda: paths.append(
        fetch_checkpoint(find_preset(TIMM), tmp_path, retries=0))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert mirror.state.hits == 1
    assert len(set(paths)) == 1 and paths[0].read_bytes() == bytes(range(256)) * 4000
