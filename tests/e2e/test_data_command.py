"""``resnet-ft data standin``: the offline stand-in the demo and the tests start from."""

from __future__ import annotations


def test_data_standin_command(tmp_path, cli):
    result = cli("data", "standin", tmp_path / "s", "--depth", 50, "--images-per-class", 2)
    assert result.code == 0, result.err
    prefix = tmp_path / "s" / "resnet_v1_50.ckpt"
    assert f"wrote STAND-IN checkpoint {prefix}" in result.out
    assert prefix.with_name(prefix.name + ".index").is_file()
    images = sorted(p.relative_to(tmp_path / "s" / "images").as_posix()
                    for p in (tmp_path / "s" / "images").rglob("*.jpg"))
    assert images == [f"{c}/{c}_{n:04d}.jpg" for c in
                      ("daisy", "dandelion", "roses", "sunflowers", "tulips") for n in (0, 1)]
    converted = cli("convert", prefix, "-o", tmp_path / "b.keras")
    assert converted.code == 0 and "ResNet-50, slim family" in converted.out
