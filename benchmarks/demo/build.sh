#!/bin/sh
# Build the demo experiment driver against a built srlm library:
#   benchmarks/demo/build.sh BUILD_DIR   (default build) -> BUILD_DIR/demo_m1, BUILD_DIR/demo_iter
set -e
B=${1:-build}
S=${SRLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
for prog in demo_m1 demo_iter demo_pairs; do
cc -std=c11 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fopenmp \
   -I"$S/src" -I"$S/kernels" -I/usr/include/x86_64-linux-gnu/openblas-openmp $(pkg-config --cflags libcjson) \
   "$(dirname "$0")/$prog.c" -o "$B/$prog" "$B/libsrlmlib.a" \
   $(pkg-config --libs yaml-0.1 libcjson sentencepiece) \
   -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas \
   $(mpicc --showme:link 2>/dev/null || echo -lmpi) -lstdc++ -lm -lpthread
done
