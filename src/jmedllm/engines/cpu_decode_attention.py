"""Decode attention on CPU at memory bandwidth: one query per row, each row its own columns.

A decode step's attention reads every row's keys and values once per layer and does little
arithmetic on them, so its cost is the bytes read. torch's CPU SDPA kernel reads them at
12–20 GB/s on the project's machine (a plain streaming read there: 26–31 GB/s), and it reads
a padded rectangle, so the engine ran it per group of rows of similar length
(``hf_decode_groups``). This kernel takes each row's first column instead (``starts``) and
reads exactly the filled columns of each row, in one pass per (row, head) with an online
softmax, at 21–25 GB/s there (docs/benchmarks.md).

It is C with AVX2 / FMA intrinsics, built on first use by the system's C compiler (``$CC``,
else ``cc`` / ``gcc``; 0.7 s here) into the cache (``paths.cache_root() / "kernels"``,
named by a hash of the source, flags, compiler and runtime), and loaded with ctypes; its loop
over (row, head) pairs runs on torch's own OpenMP threads: it is linked against the runtime
file torch's library uses (other packages bring their own, e.g. sentencepiece) and loaded with
its own dependencies first, and its ``GOMP_parallel`` must resolve to that file. Where any of
that fails (no compiler, no AVX2 / FMA, not Linux x86-64, another OpenMP runtime), ``load()``
returns None, the reason is in ``unavailable_reason()``, and the engine keeps SDPA by row
groups. Results equal SDPA's to float rounding (another summation order); the engine checks
that on the loaded model before using it (``hf_decode_groups.row_groups_are_exact``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from jmedllm.paths import cache_root

#: largest head size the kernel takes (a multiple of 8 up to this)
MAX_HEAD_DIM = 256
FLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp", "-fPIC")
SYMBOL = "jmedllm_decode_attention_f32"

SOURCE = r"""#include <immintrin.h>
#include <math.h>
#include <stdint.h>

static inline float hsum8(__m256 x) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

static inline float dot(const float *qs, const float *kr, int64_t D) {
    __m256 a = _mm256_mul_ps(_mm256_load_ps(qs), _mm256_loadu_ps(kr));
    __m256 b = _mm256_setzero_ps();
    int64_t d = 8;
    for (; d + 16 <= D; d += 16) {
        b = _mm256_fmadd_ps(_mm256_load_ps(qs + d), _mm256_loadu_ps(kr + d), b);
        a = _mm256_fmadd_ps(_mm256_load_ps(qs + d + 8), _mm256_loadu_ps(kr + d + 8), a);
    }
    if (d < D) b = _mm256_fmadd_ps(_mm256_load_ps(qs + d), _mm256_loadu_ps(kr + d), b);
    return hsum8(_mm256_add_ps(a, b));
}

#define MAXD 256
/* One (row, head) pair: columns [start, end) of its keys and values; NV = D / 8 when the head
   size is known at compile time (accumulators in registers), else 0 (the general loop). */
static inline __attribute__((always_inline)) void pair(const float *qp, const float *kb, int64_t ksl,
        const float *vb, int64_t vsl, int64_t start, int64_t end, int64_t D, float scale, float *o, const int NV) {
    float qs[MAXD] __attribute__((aligned(32)));
    __m256 acc[MAXD / 8];
    const int nv = NV ? NV : (int)(D / 8);
    for (int64_t d = 0; d < D; ++d) qs[d] = qp[d] * scale;
    for (int c = 0; c < nv; ++c) acc[c] = _mm256_setzero_ps();
    float m = -INFINITY, sum = 0.f;
    for (int64_t j = start; j < end; j += 4) {
        const int n = end - j < 4 ? (int)(end - j) : 4;
        float s[4];
        const float *kr = kb + j * ksl, *vr = vb + j * vsl;
        _mm_prefetch((const char *)(kr + 16 * ksl), _MM_HINT_T0);
        _mm_prefetch((const char *)(vr + 16 * vsl), _MM_HINT_T0);
        float bm = -INFINITY;
        for (int u = 0; u < n; ++u) { s[u] = dot(qs, kr + u * ksl, D); bm = fmaxf(bm, s[u]); }
        if (bm > m) {  /* a new maximum: rescale what was summed so far */
            const float r = expf(m - bm);
            const __m256 rv = _mm256_set1_ps(r);
            for (int c = 0; c < nv; ++c) acc[c] = _mm256_mul_ps(acc[c], rv);
            sum *= r;
            m = bm;
        }
        for (int u = 0; u < n; ++u) {
            const float w = expf(s[u] - m);
            const __m256 wv = _mm256_set1_ps(w);
            const float *vu = vr + u * vsl;
            sum += w;
            for (int c = 0; c < nv; ++c) acc[c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(vu + 8 * c), acc[c]);
        }
    }
    const __m256 inv = _mm256_set1_ps(1.f / sum);
    for (int c = 0; c < nv; ++c) _mm256_storeu_ps(o + 8 * c, _mm256_mul_ps(acc[c], inv));
}

/* out[b, h, :] = softmax(scale q[b,h] . k[b, h/g, j]) v[b, h/g, j] over j in [starts[b], end).
   D a multiple of 8, at most MAXD; every row attends at least one column. */
void jmedllm_decode_attention_f32(const float *q, int64_t qsb, int64_t qsh,
                                  const float *k, int64_t ksb, int64_t ksh, int64_t ksl,
                                  const float *v, int64_t vsb, int64_t vsh, int64_t vsl,
                                  const int64_t *starts, int64_t end, int64_t B, int64_t H, int64_t HK,
                                  int64_t D, float scale, float *out) {
    const int64_t group = H / HK;
    #pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < B * H; ++p) {
        const int64_t b = p / H, h = p % H, hk = h / group;
        const float *qp = q + b * qsb + h * qsh, *kb = k + b * ksb + hk * ksh, *vb = v + b * vsb + hk * vsh;
        if (D == 64) pair(qp, kb, ksl, vb, vsl, starts[b], end, 64, scale, out + p * D, 8);
        else if (D == 128) pair(qp, kb, ksl, vb, vsl, starts[b], end, 128, scale, out + p * D, 16);
        else pair(qp, kb, ksl, vb, vsl, starts[b], end, D, scale, out + p * D, 0);
    }
}
"""

_reason: list[str] = []


def unavailable_reason() -> str | None:
    """Why :func:`load` returned None (None when it has not, or has not been asked yet)."""
    return _reason[0] if _reason else None


def _refuse(reason: str) -> None:
    _reason[:] = [reason]
    return None


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _file_defining(library: ctypes.CDLL, symbol: str) -> str | None:
    """The file that ``symbol`` resolves to from ``library`` (dlsym, then dladdr), or None."""
    try:
        address = ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
        libc = ctypes.CDLL(None)
        dladdr = getattr(libc, "dladdr", None) or ctypes.CDLL("libdl.so.2").dladdr
    except (AttributeError, OSError):
        return None
    dladdr.argtypes, dladdr.restype = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)], ctypes.c_int
    info = _DlInfo()
    if not address or not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(info.dli_fname.decode())


def _torch_openmp_runtime() -> str | None:
    """The OpenMP runtime file torch's CPU library runs its threads on."""
    libtorch = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return _file_defining(ctypes.CDLL(str(libtorch)), "omp_get_max_threads") if libtorch.is_file() else None
    except OSError:
        return None


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
        for line in info:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


@functools.cache
def load() -> "DecodeAttentionKernel | None":
    """The kernel, built and loaded once per process; None where it cannot run here."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return _refuse(f"needs Linux on x86-64, not {platform.system()} on {platform.machine()}")
    if not {"avx2", "fma"} <= _cpu_flags():
        return _refuse("the CPU lacks AVX2 or FMA")
    runtime = _torch_openmp_runtime()
    if runtime is None:
        return _refuse("torch's OpenMP runtime not found")
    compiler = _compiler()
    if compiler is None:
        return _refuse("no C compiler ($CC, cc or gcc)")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        digest = hashlib.sha256("\0".join([SOURCE, " ".join(FLAGS), compiler, version, runtime]).encode()).hexdigest()[:16]
        target = cache_root() / "kernels" / f"decode_attention-{digest}.so"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                source, obj, built = Path(tmp) / "decode_attention.c", Path(tmp) / "decode_attention.o", Path(tmp) / target.name
                source.write_text(SOURCE, encoding="utf-8")
                # compiled with OpenMP, linked against torch's own runtime only (no -fopenmp at link: no second one)
                for command in ([compiler, *FLAGS, "-c", "-o", str(obj), str(source)],
                                [compiler, "-shared", "-o", str(built), str(obj), runtime,
                                 f"-Wl,-rpath,{os.path.dirname(runtime)}", "-lm"]):
                    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
                    if done.returncode != 0:
                        return _refuse(f"{' '.join(command[:2])} ... failed: {(done.stderr or done.stdout).strip()[-500:]}")
                os.replace(built, target)  # atomic: another process may be building the same file
        # its own dependencies first: GOMP_* bind to torch's runtime even if another is global
        library = ctypes.CDLL(str(target), mode=getattr(os, "RTLD_DEEPBIND", 0) | os.RTLD_LOCAL)
    except (OSError, subprocess.SubprocessError) as exc:
        return _refuse(f"could not build or load the kernel: {exc}")
    bound = _file_defining(library, "GOMP_parallel")
    if bound != runtime:  # its threads would not be torch's: they would fight them for the cores
        return _refuse(f"the kernel's OpenMP calls go to {bound}, not torch's runtime {runtime}")
    return DecodeAttentionKernel(getattr(library, SYMBOL))


class DecodeAttentionKernel:
    """``kernel(query, key, value, starts, scale)``: attention of one query per row."""

    def __init__(self, function: ctypes._CFuncPtr) -> None:
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        function.argtypes = [ptr, i64, i64, ptr, i64, i64, i64, ptr, i64, i64, i64, ptr, i64, i64, i64, i64, i64,
                             ctypes.c_float, ptr]
        function.restype = None
        self._function = function

    @staticmethod
    def supports(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> bool:
        """Whether the kernel takes these tensors: float32 on CPU, (B, H, 1, D) queries and
        (B, HK, L, D) keys and values with H a multiple of HK, D a multiple of 8 up to
        ``MAX_HEAD_DIM``, each head's positions contiguous in the last dimension."""
        if query.dim() != 4 or key.dim() != 4 or value.shape != key.shape:
            return False
        b, h, n, d = query.shape
        return (n == 1 and key.shape[0] == b and key.shape[-1] == d and d % 8 == 0 and 0 < d <= MAX_HEAD_DIM
                and key.shape[1] > 0 and h % key.shape[1] == 0
                and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.stride(-1) == 1
                        for t in (query, key, value)))

    def __call__(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, starts: torch.Tensor,
                 scale: float) -> torch.Tensor:
        """Row b attends its key/value columns ``starts[b]`` to the last, unmasked; returns
        (B, 1, H, D), the layout transformers' attention functions return."""
        if not self.supports(query, key, value):
            raise ValueError(f"decode attention kernel: unsupported query {tuple(query.shape)} {query.dtype} / "
                             f"key {tuple(key.shape)} {key.dtype}")
        b, h, _, d = query.shape
        end = key.shape[2]
        starts = starts.to(torch.int64).contiguous()
        if starts.shape != (b,) or (b and (int(starts.min()) < 0 or int(starts.max()) >= end)):
            raise ValueError(f"decode attention kernel: starts {starts.tolist()} for {b} rows of {end} columns")
        out = torch.empty((b, 1, h, d), dtype=torch.float32)
        self._function(query.data_ptr(), query.stride(0), query.stride(1),
                       key.data_ptr(), key.stride(0), key.stride(1), key.stride(2),
                       value.data_ptr(), value.stride(0), value.stride(1), value.stride(2),
                       starts.data_ptr(), end, b, h, key.shape[1], d, float(scale), out.data_ptr())
        return out
