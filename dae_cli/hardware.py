"""What the CPU can do, as Linux's /proc/cpuinfo says: whether it computes bfloat16 itself.

Training picks its precision from it (`training.runtime`), and `dae denoise --precision
bfloat16` is refused where the CPU would only emulate bfloat16, which is slower than
float32 (BENCHMARKS.md, issue 25).
"""

from __future__ import annotations

from pathlib import Path

NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # AVX512-BF16, AMX: used by oneDNN
CPUINFO = Path("/proc/cpuinfo")


def native_bfloat16(cpuinfo: Path | None = None) -> bool:
    """Whether the CPU computes bfloat16 itself (AVX512-BF16 or AMX), as `cpuinfo` (default
    `CPUINFO`) says; False where unknown."""
    try:
        text = (cpuinfo or CPUINFO).read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool(NATIVE_BFLOAT16_FLAGS & set(flags))
