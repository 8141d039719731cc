#!/bin/sh
# Build the demo experiment driver against a built srlm library:
#   benchmarks/demo/build.sh BUILD_DIR   (default build) -> BUILD_DIR/demo_m1, demo_iter, demo_pairs
set -e
B=${1:-build}
S=${SRLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# srlm's static libraries in link order; a CUDA build adds its kernels and the runtime
libs="$B/libsrlmlib.a"
[ -f "$B/libsrlmnccl.a" ] && libs="$libs $B/libsrlmnccl.a"
[ -f "$B/kernels/libsrlmkernels.a" ] && libs="$libs $B/kernels/libsrlmkernels.a -L/usr/local/cuda/lib64 -L/usr/local/cuda/lib -lcudart"
libs="$libs $B/libsrlmcore.a"
for prog in demo_m1 demo_iter demo_pairs; do
cc -std=c11 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fopenmp \
   -I"$S/src" -I"$S/kernels" -I/usr/include/x86_64-linux-gnu/openblas-openmp $(pkg-config --cflags libcjson) \
   "$(dirname "$0")/$prog.c" -o "$B/$prog" $libs \
   $(pkg-config --libs yaml-0.1 libcjson sentencepiece) \
   -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas \
   $(mpicc --showme:link 2>/dev/null || echo -lmpi) -lstdc++ -lm -lpthread
done
