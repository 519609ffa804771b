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

# Criterion benchmarks of the per-op paths.
bench:
    cargo bench --bench ops

# Everything CI runs.
ci:
    bash .ci/run

# Sweep the simulation workloads over many seeds, faults on.
sim seeds="2000":
    cargo run --release -p iokernel-sim -- --seeds {{seeds}}

# Replay one seed of one workload (the line a failing sweep prints).
sim-replay seed workload="ops" rate="0.02":
    cargo run --release -p iokernel-sim -- --workload {{workload}} --fault-rate {{rate}} --replay {{seed}}

# The writer against a naive loop, fio, pigz and gzip (medians, ratios).
compare-writer:
    bash benches/writer-compare.sh
