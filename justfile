# iokernel tasks. `just` is optional: .ci/run does not need it.

# The README's test command.
test:
    cargo nextest run --workspace
    cargo test --doc --workspace

# Lint gates (what .ci/run enforces).
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The main job: random-read demo on every backend.
demo:
    cargo run --release -- demo

# Criterion benchmarks of the per-op paths, then `iok bench` (1 GiB file in
# the current directory: random 4 KiB reads QD1/QD32 hot/cold, 1 MiB writes).
bench *args:
    cargo bench --bench ops
    cargo run --release -- bench {{args}}

# fio vs iokernel vs tokio, compio and monoio side by side (README
# "Performance"); knobs are environment variables, e.g.
# `RUNS=3 FILE_MIB=256 just compare`.
compare:
    bash benches/compare/run.sh

# User-space instructions per echo round trip under callgrind (epoll and
# tokio servers; repeatable on a loaded machine). Knobs: ECHO_SET, SECS,
# IOK_BASELINE.
echo-instructions:
    bash benches/compare/echo-instructions.sh

# Everything CI runs.
ci:
    bash .ci/run

# Sweep the simulation workloads over many seeds, faults on.
sim seeds="2000":
    cargo run --release -p iokernel-sim -- --seeds {{seeds}}

# Replay one seed of one workload (the line a failing sweep prints).
sim-replay seed workload="ops" rate="0.02":
    cargo run --release -p iokernel-sim -- --workload {{workload}} --fault-rate {{rate}} --replay {{seed}}

# loom models of the channel, the completion handoff, the ring mailbox and worker wakeups
# (every interleaving up to the preemption bound; CI uses 2).
loom preemptions="3":
    LOOM_MAX_PREEMPTIONS={{preemptions}} RUSTFLAGS="--cfg loom" cargo test --release --lib --target-dir target/loom loom_tests

# Run each cargo-fuzz target for `seconds` (nightly + cargo-fuzz).
fuzz seconds="60":
    bash fuzz/run-all.sh {{seconds}}

# The unit and integration tests under AddressSanitizer (nightly). nextest
# runs each test in its own process, as the fd-counting tests need.
asan:
    RUSTFLAGS="-Zsanitizer=address" cargo +nightly nextest run --workspace --target x86_64-unknown-linux-gnu --target-dir target/asan

# The writer against a naive loop, fio, pigz and gzip (medians, ratios).
compare-writer:
    bash benches/writer-compare.sh

# Peak RSS and time of iok merge/pgzip on a 2 GiB line, /dev/zero and gzip
# bombs (IOK_BASELINE=path adds a before row per input).
rss:
    bash benches/rss.sh
