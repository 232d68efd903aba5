#!/usr/bin/env bash
# The GPU check (issue 25, docs/gpu.md): everything of Sietch that needs a CUDA GPU, in one
# call on a lent GPU machine, which has no Rust toolchain and no network. Two steps:
#
#   bash scripts/gpu-check.sh prepare   # here: builds the GPU tests, the GPU benchmark, the
#                                       # `sietch` binary and the C guests, strips and packs
#                                       # them with anvil into target/gpu-check/ (carry it)
#   bash scripts/gpu-check.sh run       # there: unpacks, records the device, driver and CUDA
#                                       # version, runs every step with SIETCH_REQUIRE_GPU=1,
#                                       # and writes its logs and a summary under $OUT
#
# The device tool's call (docs/gpu.md has it too):
#   command: bash scripts/gpu-check.sh run
#   carry:   ["target/gpu-check"]
#   timeout_s: 480
#
# `run` steps, each under its own timeout, all within GPU_CHECK_BUDGET_S (default 420 s; a
# run is expected to take 2 to 5 minutes, so a 15-minute device lease leaves time for two):
# sandbox GPU unit and integration tests (including the ignored GPU ones), the devnet guest's
# GPU tests, the GPU market test on anvil, a `sietch devnet` whose jobs go to the GPU, and the
# GPU benchmark (sietch_gpu against cudarc directly), and the language model's GPU path
# (issue 21: sandbox/tests/llm_gpu.rs, its completions byte-identical to the CPU build's, and
# its tokens/s). The real model (98 MB) cannot be carried (64 MiB in all): the LLM steps run
# on synthetic GGUFs of the real tensor types that the test writes itself (one of SmolLM2's
# shapes for tokens/s), and on the real model only if it is already in SIETCH_MODEL_DIR there.
# Without a GPU `run` reports SKIPPED and
# exits 0, unless SIETCH_REQUIRE_GPU=1 (then it fails); GPU_CHECK_FORCE=1 runs the steps
# anyway (they then fail, saying why: how this script is tested on a machine without a GPU).
# Exit status of `run`: 0 when every step passed (or skipped for want of a GPU), 1 otherwise.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
bundle_dir="$root/target/gpu-check"
mode="${1:-run}"

die() {
    echo "gpu-check: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------
# prepare: on a developer's machine (needs the Rust toolchain, clang for the guests, anvil)
# ---------------------------------------------------------------------------------------
prepare() {
    set -e
    # shellcheck source=scripts/env.sh
    source "$root/scripts/env.sh"
    cd "$root"
    command -v python3 >/dev/null || die "python3 is needed to read cargo's JSON"
    command -v xz >/dev/null || die "xz is needed to pack the bundle"
    local stage="$bundle_dir/stage"
    rm -rf "$bundle_dir"
    mkdir -p "$stage/bin" "$stage/guests"

    # The executables of the targets named, from cargo's JSON messages.
    exes() {
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        t = m["target"]
        print(t["name"], "+".join(t["kind"]), m["executable"])
'
    }
    local list="$bundle_dir/exes.txt"
    echo "== building the GPU tests (debug, as CI builds them)"
    cargo test --no-run --message-format=json -p sietch-sandbox --lib --test determinism --test llm_gpu | exes >"$list"
    cargo test --no-run --message-format=json -p sietch-node --test market | exes >>"$list"
    cargo test --no-run --message-format=json -p sietch-testkit --lib | exes >>"$list"
    echo "== building sietch (debug)"
    cargo build --message-format=json -p sietch-cli --bin sietch | exes >>"$list"
    echo "== building the GPU benchmark (bench profile)"
    cargo bench --no-run --message-format=json -p sietch-sandbox --bench gpu | exes >>"$list"
    pick() { # NAME KIND -> path
        awk -v n="$1" -v k="$2" '$1 == n && $2 == k { p = $3 } END { if (p == "") exit 1; print p }' "$list" ||
            die "no executable for $1 ($2) in $list"
    }
    cp "$(pick sietch_sandbox lib)" "$stage/bin/sandbox-unit"
    cp "$(pick determinism test)" "$stage/bin/determinism"
    cp "$(pick llm_gpu test)" "$stage/bin/llm-gpu"
    cp "$(pick sietch_testkit lib)" "$stage/bin/testkit-unit"
    cp "$(pick market test)" "$stage/bin/market"
    cp "$(pick sietch bin)" "$stage/bin/sietch"
    cp "$(pick gpu bench)" "$stage/bin/gpu-bench"
    local anvil="$root/tools/bin/anvil"
    [ -x "$anvil" ] || die "no $anvil: run scripts/setup.sh"
    cp -L "$anvil" "$stage/bin/anvil"

    echo "== compiling the C guests the GPU steps load (the GPU machine has no wasm clang)"
    # Running these here fills target/tmp/sietch-guests (the tests' guest cache): the
    # determinism test compiles gpu_saxpy, the benchmark compiles gpu_bench before it looks
    # for a device.
    (cd sandbox && "$stage/bin/determinism" --exact gpu_guest_sees_the_device_the_host_has) >/dev/null
    (cd sandbox && "$stage/bin/gpu-bench" --bench) >/dev/null
    local cache="$root/target/tmp/sietch-guests"
    local g
    for g in gpu_saxpy gpu_bench; do
        ls "$cache/$g"-*.wasm >/dev/null 2>&1 || die "no cached $g guest in $cache"
    done
    cp "$cache"/*.wasm "$stage/guests/"
    # The inference guest's wasm builds (guests/llm/build.sh), for tests/llm_gpu.rs through
    # SIETCH_LLM_BUILDS (the native builds are not needed there).
    mkdir -p "$stage/llm"
    bash sandbox/guests/llm/build.sh "$bundle_dir/llm-build" >/dev/null
    cp "$bundle_dir/llm-build/llm.wasm" "$bundle_dir/llm-build/llm-gpu.wasm" "$stage/llm/"
    rm -rf "$bundle_dir/llm-build"

    strip "$stage/bin/"* 2>/dev/null || true
    {
        echo "build_root $root"
        echo "commit $(git -C "$root" rev-parse HEAD)$(git -C "$root" diff --quiet HEAD || echo ' plus the uncommitted changes of the working tree')"
        echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
    } >"$stage/manifest.txt"
    echo "== packing"
    tar -C "$stage" -cf - . | xz -T2 -6 >"$bundle_dir/bundle.tar.xz"
    cp "$stage/manifest.txt" "$bundle_dir/manifest.txt"
    rm -rf "$stage"
    local size tree
    size=$(stat -c %s "$bundle_dir/bundle.tar.xz")
    tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    echo "bundle: $bundle_dir/bundle.tar.xz, $((size >> 20)) MiB; working tree $((tree >> 20)) MiB (the device tool takes 64 MiB in all)"
    [ $((size + tree)) -lt $((62 << 20)) ] || die "bundle plus working tree over 62 MiB: too big to carry"
    echo "now call the device tool: command 'bash scripts/gpu-check.sh run', carry [\"target/gpu-check\"], timeout_s 480"
}

# ---------------------------------------------------------------------------------------
# run: on the GPU machine
# ---------------------------------------------------------------------------------------
out=""
summary=""
failed=0
t_start=$(date +%s)
budget="${GPU_CHECK_BUDGET_S:-420}"

note() { echo "$*" | tee -a "$summary"; }

# step NAME CAP_SECONDS LOGFILE CWD COMMAND...: runs under min(cap, budget left), records PASS,
# FAIL or TIMEOUT and the seconds it took.
step() {
    local name="$1" cap="$2" log="$3" cwd="$4"
    shift 4
    local left=$((budget - ($(date +%s) - t_start)))
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -le 5 ]; then
        note "SKIP    $name: the check's time budget (${budget} s) is spent"
        failed=1
        return
    fi
    echo "== $name (limit ${limit} s)" | tee -a "$out/$log"
    local t0 rc
    t0=$(date +%s)
    (cd "$cwd" && timeout -k 10 "$limit" "$@") >>"$out/$log" 2>&1
    rc=$?
    local took=$(($(date +%s) - t0))
    if [ $rc -eq 0 ]; then
        note "PASS    $name (${took} s)"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        note "TIMEOUT $name after ${took} s (log: $log)"
        failed=1
    else
        note "FAIL    $name: exit $rc after ${took} s (log: $log)"
        failed=1
    fi
}

# Makes cudarc find NVRTC: it dlopens libnvrtc.so or libnvrtc.so.{12,11,10,9,1}, and a
# CUDA 13 install may have only libnvrtc.so.13; this links the first one found (the ld.so
# cache, then the toolkit, then anywhere under /usr/local and /opt, such as a Python wheel's)
# under the unversioned name, and puts its folder on the path for libnvrtc-builtins. The
# driver (libcuda.so.1) is found as installed. Prints the LD_LIBRARY_PATH entries to add.
nvrtc_path() {
    local links="$1" lib
    mkdir -p "$links"
    lib=$(
        {
            ldconfig -p 2>/dev/null | awk '/libnvrtc\.so/ { print $NF }'
            ls /usr/local/cuda/lib64/libnvrtc.so* /usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so* 2>/dev/null
            find /usr/local /opt -maxdepth 9 -name 'libnvrtc.so*' 2>/dev/null
        } | grep -v builtins | head -1
    )
    if [ -n "$lib" ]; then
        ln -sf "$lib" "$links/libnvrtc.so"
        echo "$links:$(dirname "$lib")"
    else
        echo "$links"
    fi
}

run() {
    summary="$out/summary.txt"
    : >"$summary"
    note "Sietch GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), on $(uname -srm)"

    local has_gpu=0
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        has_gpu=1
    fi
    {
        echo "== nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv"
        nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
        echo "== nvidia-smi | grep CUDA"
        nvidia-smi 2>&1 | grep -i 'CUDA'
        echo "== nvcc --version"
        nvcc --version 2>&1 | tail -2
        echo "== libcuda and libnvrtc"
        ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc' || echo "(none in the ld.so cache)"
        ls -l /usr/local/nvidia/lib64/libcuda.so* 2>&1
        echo "LD_LIBRARY_PATH as given: ${LD_LIBRARY_PATH:-}"
        echo "== /sys/module/nvidia/version"
        cat /sys/module/nvidia/version 2>&1
        echo "== the same device through PyTorch (tells a machine fault from a Sietch one)"
        timeout 60 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1 | tail -1
    } >"$out/device.txt" 2>&1
    if [ $has_gpu -eq 1 ]; then
        note "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
        note "CUDA:   $(nvidia-smi 2>&1 | grep -o 'CUDA Version: *[0-9.]*' | head -1)"
    else
        note "device: none (no working nvidia-smi)"
    fi
    if [ $has_gpu -eq 0 ] && [ "${GPU_CHECK_FORCE:-0}" != 1 ]; then
        if [ "${SIETCH_REQUIRE_GPU:-0}" = 1 ]; then
            note "FAILED: SIETCH_REQUIRE_GPU=1 but this machine has no GPU"
            return 1
        fi
        note "SKIPPED: no GPU on this machine; nothing was run (GPU_CHECK_FORCE=1 runs the steps anyway)"
        return 0
    fi

    [ -f "$bundle_dir/bundle.tar.xz" ] || {
        note "FAILED: no $bundle_dir/bundle.tar.xz: run 'bash scripts/gpu-check.sh prepare' first and carry target/gpu-check"
        return 1
    }
    local b="$root/target/gpu-check/unpacked"
    rm -rf "$b"
    mkdir -p "$b"
    if command -v xz >/dev/null; then
        xz -dc "$bundle_dir/bundle.tar.xz" | tar -C "$b" -xf - || {
            note "FAILED: could not unpack the bundle"
            return 1
        }
    else
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$bundle_dir/bundle.tar.xz" "$b" || {
            note "FAILED: could not unpack the bundle (no xz, and python3 failed)"
            return 1
        }
    fi
    note "bundle: $(tr '\n' ';' <"$b/manifest.txt")"

    # The binaries were built at build_root and find the sources (guests, fixtures) there:
    # link it to this checkout when the tree sits elsewhere here.
    local build_root
    build_root=$(awk '$1 == "build_root" { print $2 }' "$b/manifest.txt")
    if [ "$build_root" != "$root" ]; then
        if [ -e "$build_root" ] && [ "$(cd "$build_root" && pwd -P)" != "$root" ]; then
            note "FAILED: the bundle was built at $build_root, which here is another directory"
            return 1
        fi
        if [ ! -e "$build_root" ]; then
            if ! { mkdir -p "$(dirname "$build_root")" && ln -s "$root" "$build_root"; }; then
                note "FAILED: cannot link $build_root to $root"
                return 1
            fi
        fi
    fi
    mkdir -p "$root/target/tmp/sietch-guests"
    cp "$b/guests/"*.wasm "$root/target/tmp/sietch-guests/"

    export SIETCH_REQUIRE_GPU=1
    export PATH="$b/bin:$PATH"
    local ld d
    ld=$(nvrtc_path "$b/cudalib")
    # The driver's own folder, where an image mounts it outside the ld.so cache.
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
        if [ -e "$d/libcuda.so.1" ]; then ld="$ld:$d"; fi
    done
    export LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >>"$out/device.txt"
    ls -l "$b/cudalib" >>"$out/device.txt" 2>&1
    export RUST_BACKTRACE=1

    local bin="$b/bin" sb="$build_root/sandbox" nd="$build_root/node" tk="$build_root/testkit"
    # libtest directly: --include-ignored runs the GPU tests that a plain run skips.
    step "sandbox unit tests (gpu::)" 60 sandbox-tests.log "$sb" \
        "$bin/sandbox-unit" --include-ignored gpu::
    step "sandbox GPU tests (determinism: gpu, device)" 90 sandbox-tests.log "$sb" \
        "$bin/determinism" --include-ignored gpu device
    step "devnet guest tests (testkit devnet::guest)" 60 node-tests.log "$tk" \
        "$bin/testkit-unit" --include-ignored devnet::guest::
    step "GPU market on anvil (anvil_a_gpu_job_runs_on_the_gpu_provider)" 120 node-tests.log "$nd" \
        "$bin/market" --ignored --exact anvil_a_gpu_job_runs_on_the_gpu_provider --nocapture
    step "sietch devnet, 8 jobs, every 4th on the GPU" 120 devnet.log "$root" \
        "$bin/sietch" devnet --providers 2 --jobs 8 --api-port 0
    if grep -q '^GPU ' "$out/devnet.log" &&
        grep -Eq '^jobs +8 done \(2 on the GPU\), 0 failed' "$out/devnet.log"; then
        note "PASS    devnet: 8 jobs done, 2 on the GPU, none failed"
    else
        note "FAIL    devnet: not 8 jobs done with 2 on the GPU and none failed (devnet.log): $(grep -E '^(jobs|GPU|no GPU)' "$out/devnet.log" | tr '\n' ';')"
        failed=1
    fi
    step "GPU benchmark (sietch_gpu vs cudarc)" 120 bench.log "$sb" "$bin/gpu-bench" --bench
    grep -E '^(GPU-BENCH|device 0|empty kernel|kernel ~|tokens/s)' "$out/bench.log" >>"$summary"
    # The language model's GPU path (issue 21): the fallback, the byte-equality with the CPU
    # build on the device, then tokens/s. Logged to bench.log (at most 8 files come back).
    step "LLM GPU path (llm_gpu: byte-identical to the CPU build)" 150 bench.log "$sb" \
        env SIETCH_LLM_BUILDS="$b/llm" "$bin/llm-gpu" --include-ignored --nocapture gpu_build_sees gpu_build_matches
    step "LLM GPU tokens/s (llm_gpu speed_of_the_gpu_build)" 120 bench.log "$sb" \
        env SIETCH_LLM_BUILDS="$b/llm" "$bin/llm-gpu" --ignored --exact speed_of_the_gpu_build --nocapture
    grep -E '^(LLM-GPU|SKIPPED)' "$out/bench.log" >>"$summary"

    note "total $(($(date +%s) - t_start)) s; $([ $failed -eq 0 ] && echo 'ALL PASSED' || echo 'SOME STEPS FAILED')"
    return $failed
}

case "$mode" in
prepare) prepare ;;
run)
    # At most 8 files come back from $OUT: summary.txt, device.txt, gpu-check.log (all the
    # output) and one log per kind of step.
    out="${OUT:-$root/target/gpu-check-out}"
    mkdir -p "$out"
    rm -f "$out/summary.txt" "$out/device.txt" "$out"/*.log
    run 2>&1 | tee "$out/gpu-check.log"
    exit "${PIPESTATUS[0]}"
    ;;
*) die "usage: scripts/gpu-check.sh [prepare|run]" ;;
esac
