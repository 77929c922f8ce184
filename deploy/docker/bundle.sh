#!/usr/bin/env bash
# Gathers binaries and the shared libraries they need into one folder, the
# runtime stage of the Dockerfile copies:
#
#   deploy/docker/bundle.sh DEST BINARY...
#     DEST/bin/NAME   each binary, debug info stripped
#     DEST/lib/       every library ldd resolves for them, except those the
#                     runtime base image has itself (glibc, libstdc++,
#                     libgcc_s: the runtime stage uses the same distribution
#                     release as the build stage) and the CUDA libraries
#                     (the nvidia/cuda runtime image and the driver bring them)
#
# The image then lists DEST/lib in /etc/ld.so.conf.d. CI runs this script too
# (tests/deploy, deploy_live_metrics_test) and serves from the bundle, so the
# files the image runs are the files CI tested.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DEST BINARY..." >&2
  exit 2
fi
dest=$1
shift
mkdir -p "$dest/bin" "$dest/lib"
# Provided by the runtime base image (or the NVIDIA driver / CUDA runtime).
base_re='/(ld-linux[^/]*|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s)\.so|/usr/local/cuda|/(libcuda|libcudart|libcublas|libcublasLt|libnvidia[^/]*)\.so'
for bin in "$@"; do
  [ -x "$bin" ] || { echo "$0: not an executable: $bin" >&2; exit 1; }
  strip --strip-debug -o "$dest/bin/$(basename "$bin")" "$bin"
  chmod 755 "$dest/bin/$(basename "$bin")"
  # The driver's libraries (libcuda, libnvidia-*) come with the GPU at run time.
  missing=$(ldd "$bin" | { grep 'not found' || true; } | { grep -v -E 'libcuda\.so|libnvidia' || true; })
  if [ -n "$missing" ]; then
    echo "$0: $bin: $missing" >&2
    exit 1
  fi
  ldd "$bin" | awk '/=> \//{print $3}' | { grep -v -E "$base_re" || true; } |
    while read -r lib; do
      # The soname ldd printed, with the contents of the file it resolves to.
      [ -e "$dest/lib/$(basename "$lib")" ] || cp -L "$lib" "$dest/lib/$(basename "$lib")"
    done
done
echo "bundle.sh: $(find "$dest/bin" -type f | wc -l) binaries, $(find "$dest/lib" -type f | wc -l) libraries in $dest"
