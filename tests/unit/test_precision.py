"""``--precision auto``: the decision, with the machine's facts faked."""

from __future__ import annotations

import pytest

from resnet_ft.models.precision import cpu_flags, resolve_precision

SAPPHIRE_RAPIDS = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"})
COOPER_LAKE = frozenset({"avx512f", "avx512_bf16"})
SKYLAKE = frozenset({"avx2", "avx512f", "avx512bw"})


@pytest.mark.parametrize(
    ("flags", "gpus", "expected"),
    [
        (SAPPHIRE_RAPIDS, 0, "mixed_bfloat16"),
        (COOPER_LAKE, 0, "mixed_bfloat16"),
        (SKYLAKE, 0, "float32"),
        (frozenset(), 0, "float32"),  # no /proc/cpuinfo (macOS): the safe choice
        (SAPPHIRE_RAPIDS, 1, "mixed_float16"),  # a GPU wins over the CPU's units
        (SKYLAKE, 2, "mixed_float16"),
    ],
)
def test_auto_decision(flags, gpus, expected):
    precision, why = resolve_precision("auto", flags=lambda: flags, gpus=lambda: gpus)
    assert precision == expected
    assert why


@pytest.mark.parametrize("asked", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_an_explicit_choice_is_kept(asked):
    def boom():
        raise AssertionError("an explicit precision must not probe the machine")

    assert resolve_precision(asked, flags=boom, gpus=boom) == (asked, "as asked")


def test_reasons_name_what_was_found():
    _, why = resolve_precision("auto", flags=lambda: SAPPHIRE_RAPIDS, gpus=lambda: 0)
    assert why == "the CPU runs bfloat16 natively (amx_bf16, avx512_bf16)"


def test_cpu_flags_reads_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512_bf16 amx_bf16\n"
                       "bugs\t\t: spectre\n")
    assert cpu_flags(str(cpuinfo)) == {"fpu", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()
