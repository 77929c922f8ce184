#!/usr/bin/env python3
"""Static map of a CUDA kernel's SASS, for work without a GPU or a disassembler.

The CUDA install here has nvcc and ptxas but no cuobjdump/nvdisasm (nor does
Debian 12), and `ptxas -v` only counts spilled bytes, not where they are. This
reads the cubin's ELF directly: every sm_90 instruction is 16 bytes with its
opcode in the low 12 bits, so local-memory spills (LDL/STL), tensor-core
products (HMMA), barriers and loads can be located, e.g. "is any spill inside
the key-tile loop?" (the loop is the stretch between its barrier and its last
HMMA). Opcodes were found by compiling kernels with known instructions
(`--check` does it again and fails if they moved).

usage:
  scripts/sass_map.py kernels/cuda/prefill_attention_mma.cu --kernel 'bfloat16Li64'
  scripts/sass_map.py FILE.cubin [--kernel SUBSTRING]
  scripts/sass_map.py --check
"""
import argparse
import collections
import os
import struct
import subprocess
import sys
import tempfile

NVCC = os.environ.get("NVCC", "/usr/local/cuda/bin/nvcc")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# opcode (low 12 bits) -> (map letter, name); sm_90, nvcc 13. Memory
# instructions come in two encodings 0x600 apart (STS: 0x388 in the prefill
# kernel, 0x988 in the calibration kernel; the address operand differs).
_MEMORY = {0x983: ("L", "LDL"), 0x387: ("S", "STL"), 0x981: ("G", "LDG"), 0x986: ("g", "STG"),
           0x984: ("l", "LDS"), 0x388: ("s", "STS")}
OPCODES = {
    0x23C: ("H", "HMMA"),
    0xB1D: ("B", "BAR"),
    0x83B: ("m", "LDSM"),
    0x308: ("X", "MUFU"),
    0x947: ("j", "BRA"),
    0xFAE: ("c", "LDGSTS"),  # cp.async
    0x91A: ("d", "DEPBAR"),  # cp.async.wait_group
    **_MEMORY,
    **{op + 0x600 if op < 0x600 else op - 0x600: v for op, v in _MEMORY.items()},
}

CALIBRATION = r"""
__global__ void spill(float* out, int n) {  // LDG, STL, LDL
  volatile float loc[64];
  for (int i = 0; i < 64; ++i) loc[(i * n) & 63] = out[i];
  out[threadIdx.x] = loc[n & 63];
}
__global__ void mma(float* c, const unsigned* a) {  // HMMA
  float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
               "{%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(a[4]), "r"(a[5]));
  c[threadIdx.x] = d0 + d1 + d2 + d3;
}
__global__ void bar(float* c) {  // STS, BAR, LDS, STG
  __shared__ float s[32];
  s[threadIdx.x % 32] = c[0];
  __syncthreads();
  c[threadIdx.x] = s[(threadIdx.x + 1) % 32];
}
__global__ void ldsm(unsigned* c) {  // LDSM
  __shared__ unsigned short s[8 * 8 * 4];
  s[threadIdx.x] = threadIdx.x;
  __syncwarp();
  unsigned r0, r1, r2, r3;
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(s + (threadIdx.x % 32) * 8));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(a));
  c[threadIdx.x] = r0 + r1 + r2 + r3;
}
__global__ void mufu(float* c) { c[threadIdx.x] = __expf(c[threadIdx.x]); }  // MUFU
__global__ void cpasync(const float4* g) {  // LDGSTS, DEPBAR
  __shared__ float4 s[64];
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(s + threadIdx.x % 64));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(g + threadIdx.x), "r"(16));
  asm volatile("cp.async.commit_group;\n" ::: "memory");
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}
"""
# kernel substring -> opcodes that must appear in it
EXPECTED = {"spill": ["LDG", "STL", "LDL"], "mma": ["HMMA"], "bar": ["STS", "BAR", "LDS", "STG"],
            "ldsm": ["LDSM"], "mufu": ["MUFU"], "cpasync": ["LDGSTS", "DEPBAR"]}


def kernels(cubin):
    """(name, [opcode per instruction]) for every .text.<kernel> section."""
    data = open(cubin, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit(f"{cubin}: not a 64-bit ELF cubin")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    stroff = secs[shstrndx][4]
    out = []
    for name, _typ, _flags, _addr, off, size in secs:
        nm = data[stroff + name:data.index(b"\0", stroff + name)].decode()
        if nm.startswith(".text."):
            ops = [struct.unpack_from("<Q", data, off + k)[0] & 0xFFF for k in range(0, size, 16)]
            out.append((nm[len(".text."):], ops))
    return out


def compile_cubin(source, out, extra=()):
    cmd = [NVCC, "-cubin", "-std=c++17", "-O3", f"-I{ROOT}", "--expt-relaxed-constexpr",
           "-gencode", "arch=compute_90,code=sm_90", *extra, source, "-o", out]
    subprocess.run(cmd, check=True)


def names(ops):
    return collections.Counter(OPCODES[o][1] for o in ops if o in OPCODES)


def check():
    with tempfile.TemporaryDirectory() as d:
        src, cubin = os.path.join(d, "cal.cu"), os.path.join(d, "cal.cubin")
        open(src, "w").write(CALIBRATION)
        compile_cubin(src, cubin)
        found = {name: names(ops) for name, ops in kernels(cubin)}
    bad = []
    for sub, want in EXPECTED.items():
        got = next((c for n, c in found.items() if sub in n), None)
        for w in want:
            if got is None or got[w] == 0:
                bad.append(f"{sub}: no {w}")
    if bad:
        sys.exit("opcode table out of date: " + "; ".join(bad))
    print("opcode table ok:", ", ".join(f"{v[1]}={k:#05x}" for k, v in sorted(OPCODES.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", help=".cu (compiled for sm_90 here) or .cubin")
    ap.add_argument("--kernel", default="", help="only kernels whose mangled name contains this")
    ap.add_argument("--width", type=int, default=128, help="instructions per map line")
    ap.add_argument("--check", action="store_true", help="verify the opcode table with nvcc")
    a = ap.parse_args()
    if a.check:
        check()
        return
    if not a.file:
        ap.error("a file, or --check")
    with tempfile.TemporaryDirectory() as d:
        cubin = a.file
        if a.file.endswith(".cu"):
            cubin = os.path.join(d, "k.cubin")
            compile_cubin(a.file, cubin)
        found = [(n, ops) for n, ops in kernels(cubin) if a.kernel in n]
    if not found:
        sys.exit("no kernel matches")
    print("map: " + " ".join(sorted({f"{v[0]}={v[1]}" for v in OPCODES.values()})) + " .=other")
    for name, ops in found:
        line = "".join(OPCODES.get(o, (".",))[0] for o in ops)
        print(f"\n{name}: {len(ops)} instructions; " +
              ", ".join(f"{k} {v}" for k, v in sorted(names(ops).items())))
        for i in range(0, len(line), a.width):
            print(f"{i:6d} {line[i:i + a.width]}")


if __name__ == "__main__":
    main()
