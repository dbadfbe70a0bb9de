"""What machine a measurement was made on (printed beside every timing of the benchmarks)."""

from __future__ import annotations

import platform

__all__ = ["cpu_model"]


def _first_processor(cpuinfo: str) -> dict[str, str]:
    """The ``key: value`` fields of the first processor of a ``/proc/cpuinfo``-like file."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def _vector_units(flags: set[str]) -> str:
    """The widest vector extensions of ``flags``: what changes TensorFlow's CPU speed most."""
    if "avx512f" in flags:
        return "AVX-512, AMX" if "amx_tile" in flags else "AVX-512"
    return "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name with its family, model and vector extensions, from ``cpuinfo``.

    A name alone does not tell machines apart ("AMD EPYC", "Intel(R) Xeon(R) Processor" on
    many cloud machines), yet 3D convolutions run several times faster on some than on
    others, so timings are printed with e.g. ``"AMD EPYC (family 25, model 1; AVX2, no
    AVX-512)"``. Falls back to ``platform.processor()`` where the file cannot be read.
    """
    fields = _first_processor(cpuinfo)
    name = fields.get("model name") or platform.processor() or platform.machine()
    parts = []
    ident = ", ".join(f"{label} {fields[key]}" for key, label in
                      (("cpu family", "family"), ("model", "model")) if key in fields)
    if ident:
        parts.append(ident)
    if "flags" in fields:
        parts.append(_vector_units(set(fields["flags"].split())))
    return f"{name} ({'; '.join(parts)})" if parts else name
