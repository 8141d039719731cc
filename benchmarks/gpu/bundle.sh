#!/usr/bin/env bash
# Packs a CUDA build of srlm into one folder that runs benchmarks/gpu/run.sh on a
# GPU machine that has the NVIDIA driver and CUDA toolkit but none of srlm's
# other libraries (libyaml, cJSON, SentencePiece, OpenBLAS, Open MPI): a compute
# node without the development packages, or a machine with another image. Build
# here, copy the archive and the source tree there, then from the source tree
#     tar -xJf srlm-gpu.tar.xz && SRLM_GPU_BUILD=srlm-gpu SRLM_GPU_PREBUILT=1 bash benchmarks/gpu/run.sh
# (benchmarks/gpu/README.md, "A GPU machine without srlm's libraries").
#
# The folder holds the programs run.sh needs (srlm, bench_kernels, bench_model,
# the tests/gpu programs; stripped), the CTest files of the gpu-labelled tests
# with the source and build paths left as @SRLM_SOURCE_DIR@ / @SRLM_BUILD_DIR@
# (bundle-env.sh fills them in where the folder lands), every shared library
# they load except glibc's and the C++ runtime's (bundle-lib/), and Open MPI's
# runtime (its components, PMIx's and the help texts, and mpirun; bundle-ompi/),
# relocated through OPAL_PREFIX: srlm alone runs as an isolated singleton, and
# the bundle's mpirun starts a few ranks on the one machine. The NVIDIA libraries stay the target's: cuBLAS and NCCL are
# opened at run time from its CUDA toolkit.
#
# Usage: bash benchmarks/gpu/bundle.sh [BUILD [DEST]]
#   BUILD  the CUDA build folder to configure and build (default build-gpu)
#   DEST   where the bundle goes (default build-gpu-bundle): DEST/srlm-gpu/ (the
#          folder, made afresh) and DEST/srlm-gpu.tar.xz (it packed: ~14 MB,
#          a seventh of the folder, mostly OpenBLAS's kernels for every CPU)
# Environment: SRLM_GPU_ARCHS (CUDA architectures, default "80;90"), JOBS.
set -u -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 2
build=${1:-build-gpu}
dest=${2:-build-gpu-bundle}
out=$dest/srlm-gpu
archs=${SRLM_GPU_ARCHS:-80;90}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

die() {
    echo "bundle.sh: $*" >&2
    exit 2
}
# a failed build below must not leave an older archive looking current
rm -f "$dest/srlm-gpu.tar.xz"
for tool in cmake ldd strip; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

# ---- build ----
echo "bundle.sh: building $build (Release, SRLM_CUDA=ON, CUDA architectures $archs)"
mkdir -p "$build" || die "cannot create $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSRLM_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$archs" \
    >"$build/bundle-configure.log" 2>&1 ||
    { tail -n 20 "$build/bundle-configure.log" >&2; die "configure failed ($build/bundle-configure.log)"; }
cmake --build "$build" -j "$jobs" >"$build/bundle-build.log" 2>&1 ||
    { grep -E "error|Error" "$build/bundle-build.log" | head -n 20 >&2; die "build failed ($build/bundle-build.log)"; }
build_abs=$(cd "$build" && pwd)

# ---- the programs, stripped, at the same places as in the build ----
programs=(srlm benchmarks/gpu/bench_kernels benchmarks/gpu/bench_model)
for src in tests/gpu/test_*.c; do
    programs+=("tests/$(basename "$src" .c)")
done
programs+=(tests/test_trainer_torch) # test_trainer_torch_gpu: the unit test on the GPU backend
rm -rf "$out" && mkdir -p "$out/bundle-lib" || die "cannot create $out"
for p in "${programs[@]}"; do
    [ -x "$build/$p" ] || die "$build/$p was not built (is this a CUDA build? see $build/bundle-build.log)"
    mkdir -p "$out/$(dirname "$p")" && cp "$build/$p" "$out/$p" && strip --strip-unneeded "$out/$p" ||
        die "cannot copy $p into $out"
done

# ---- the CTest files of the gpu tests, paths made into placeholders ----
# (the build folder lies inside the source folder: replace it first)
printf 'subdirs("tests")\n' >"$out/CTestTestfile.cmake.in"
grep -E '_gpu\]=\]' "$build/tests/CTestTestfile.cmake" |
    sed -e "s|$build_abs|@SRLM_BUILD_DIR@|g" -e "s|$root|@SRLM_SOURCE_DIR@|g" \
    >"$out/tests/CTestTestfile.cmake.in"
[ -s "$out/tests/CTestTestfile.cmake.in" ] || die "$build/tests/CTestTestfile.cmake lists no gpu tests"

# ---- the shared libraries they load, but glibc's and the C++ runtime ----
# (those the target has, and a copy of glibc cannot run under another one)
system_lib='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|libgcc_s)\.so'
copy_libs_of() { # FILE...: copy what ldd resolves for these into bundle-lib
    ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
        while read -r soname path; do
            [[ "$soname" =~ $system_lib ]] && continue
            [ -e "$out/bundle-lib/$soname" ] || cp -L "$path" "$out/bundle-lib/$soname" ||
                { echo "cannot copy $path" >&2; exit 1; }
        done
}
for p in "${programs[@]}"; do
    copy_libs_of "$out/$p" || die "copying the libraries of $p failed"
done

# ---- Open MPI's runtime, laid out under its prefix as installed here ----
command -v ompi_info >/dev/null 2>&1 || die "ompi_info is not installed (Open MPI's runtime cannot be located)"
ompi_path() { ompi_info --path "$1" --parsable 2>/dev/null | sed -n "s/^path:$1://p"; }
prefix=$(ompi_path prefix)
pkglibdir=$(ompi_path pkglibdir)
pkgdatadir=$(ompi_path pkgdatadir)
case "$pkglibdir" in "$prefix"/*) ;; *) die "Open MPI's components ($pkglibdir) are not under its prefix ($prefix)" ;; esac
case "$pkgdatadir" in "$prefix"/*) ;; *) die "Open MPI's help texts ($pkgdatadir) are not under its prefix ($prefix)" ;; esac
ompi=$out/bundle-ompi
mkdir -p "$ompi${pkglibdir#"$prefix"}" "$ompi${pkgdatadir#"$prefix"}" || die "cannot create $ompi"
cp -L "$pkglibdir"/*.so "$ompi${pkglibdir#"$prefix"}/" || die "cannot copy Open MPI's components from $pkglibdir"
cp -L "$pkgdatadir"/* "$ompi${pkgdatadir#"$prefix"}/" 2>/dev/null
copy_libs_of "$pkglibdir"/*.so || die "copying the libraries of Open MPI's components failed"
# mpirun (orterun), for a few ranks on the one machine: the end-to-end test's
# two ranks on one GPU; it launches them itself (no orted on a single node)
bindir=$(ompi_path bindir)
launcher=$(readlink -f "$bindir/mpirun" 2>/dev/null)
if [ -x "$launcher" ]; then
    mkdir -p "$ompi/bin" && cp -L "$launcher" "$ompi/bin/mpirun" && strip --strip-unneeded "$ompi/bin/mpirun" ||
        die "cannot copy $launcher"
    copy_libs_of "$ompi/bin/mpirun" || die "copying the libraries of $launcher failed"
else
    echo "bundle.sh: no mpirun in $bindir: the bundle runs single ranks only" >&2
fi
# PMIx (Open MPI 4 on Debian uses an external one) keeps its own few plugins
# (libpmix is loaded by srlm, by libopen-pal or, on Debian 12, by Open MPI's pmix component)
pmix_lib=$(ldd "$out/srlm" "$out/bundle-lib/libopen-pal.so"* "$pkglibdir"/*.so 2>/dev/null |
    awk '$1 ~ /^libpmix\.so/ && $3 ~ /^\// { print $3; exit }')
pmix_plugins=""
for d in "$(dirname "$(readlink -f "${pmix_lib:-/nonexistent}")")/pmix" "$(dirname "${pmix_lib:-/nonexistent}")/pmix"; do
    [ -d "$d" ] && { pmix_plugins=$d; break; }
done
if [ -n "$pmix_plugins" ]; then
    mkdir -p "$out/bundle-pmix" && cp -L "$pmix_plugins"/*.so "$out/bundle-pmix/" ||
        die "cannot copy PMIx's plugins from $pmix_plugins"
    copy_libs_of "$pmix_plugins"/*.so || die "copying the libraries of PMIx's plugins failed"
fi

# ---- the environment, sourced by run.sh (SRLM_GPU_PREBUILT=1) ----
cat >"$out/bundle-env.sh" <<'ENV'
# Written by benchmarks/gpu/bundle.sh. Source it with the srlm source tree as its
# argument: it points the loader and Open MPI at this folder and writes this
# folder's CTest files for where the folder and the source tree are now.
srlm_bundle_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srlm_bundle_src=$(cd "${1:?bundle-env.sh: give the srlm source folder}" && pwd)
export LD_LIBRARY_PATH="$srlm_bundle_dir/bundle-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPAL_PREFIX="$srlm_bundle_dir/bundle-ompi"
export OMPI_MCA_mca_base_component_path="$srlm_bundle_dir/bundle-ompi@PKGLIBDIR@"
# srlm alone is a singleton that starts no orted daemon; the bundle's mpirun (where
# bundle.sh found one) starts a few ranks on this machine
export OMPI_MCA_ess_singleton_isolated=1
[ -x "$srlm_bundle_dir/bundle-ompi/bin/mpirun" ] && export PATH="$srlm_bundle_dir/bundle-ompi/bin:$PATH"
export PMIX_MCA_mca_base_component_path="$srlm_bundle_dir/bundle-pmix"
for srlm_bundle_f in "$srlm_bundle_dir/CTestTestfile.cmake" "$srlm_bundle_dir/tests/CTestTestfile.cmake"; do
    sed -e "s|@SRLM_BUILD_DIR@|$srlm_bundle_dir|g" -e "s|@SRLM_SOURCE_DIR@|$srlm_bundle_src|g" \
        "$srlm_bundle_f.in" >"$srlm_bundle_f" || return 1
done
unset srlm_bundle_f
ENV
sed -i "s|@PKGLIBDIR@|${pkglibdir#"$prefix"}|" "$out/bundle-env.sh" || die "cannot write $out/bundle-env.sh"
git rev-parse --short=12 HEAD >"$out/bundle-commit" 2>/dev/null || echo unknown >"$out/bundle-commit"

tar -C "$dest" -cJf "$dest/srlm-gpu.tar.xz" srlm-gpu || die "cannot pack $dest/srlm-gpu.tar.xz"
size=$(du -sm "$out" | cut -f1)
packed=$(du -sm "$dest/srlm-gpu.tar.xz" | cut -f1)
echo "bundle.sh: $out ($size MB: ${#programs[@]} programs, $(ls "$out/bundle-lib" | wc -l) libraries, Open MPI from $prefix)"
echo "bundle.sh: $dest/srlm-gpu.tar.xz ($packed MB)"
echo "bundle.sh: on the GPU machine, in a copy of this source tree (commit $(cat "$out/bundle-commit")):"
echo "    tar -xJf $dest/srlm-gpu.tar.xz -C $dest && SRLM_GPU_BUILD=$out SRLM_GPU_PREBUILT=1 bash benchmarks/gpu/run.sh"
