"""mriqc_nb.machine.cpu_model: enough of the CPU to tell apart machines whose speeds differ."""

from __future__ import annotations

from mriqc_nb.machine import cpu_model

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma

processor\t: 1
model name\t: something else
"""


def test_names_family_model_and_vector_units(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(EPYC)
    assert cpu_model(str(f)) == "AMD EPYC (family 25, model 1; AVX2, no AVX-512)"
    f.write_text(EPYC.replace("avx2 fma", "avx2 fma avx512f amx_tile"))
    assert cpu_model(str(f)) == "AMD EPYC (family 25, model 1; AVX-512, AMX)"
    f.write_text(EPYC.replace(" avx2", ""))
    assert cpu_model(str(f)).endswith("; no AVX2)")


def test_a_missing_file_still_names_something(tmp_path):
    assert cpu_model(str(tmp_path / "absent"))
