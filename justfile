# Every developer workflow. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build the server (the plugins are built and embedded by host/build.rs).
build:
    cargo build --release

# Run the server with its embedded defaults; pass flags after `--`.
run *ARGS:
    cargo run --release -- serve {{ARGS}}

# Install what the tests need (first time) and run every test.
test *ARGS:
    tests/run {{ARGS}}

# Print the benchmark figures quoted in the README.
bench:
    cargo bench -p credhost

# Build only the plugin components, for wasm32-wasip2.
plugins:
    cd plugins && cargo build --release --target wasm32-wasip2

fmt:
    cargo fmt --all
    cd plugins && cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cd plugins && cargo fmt --all -- --check && cargo clippy --target wasm32-wasip2 --all-targets -- -D warnings

# What CI runs.
ci:
    .ci/run

# Start a new verifier plugin from the template: just new-plugin redis-verifier ../my-plugins
new-plugin NAME DIR=".":
    scripts/new-plugin {{NAME}} {{DIR}}

# Check a component against the plugin contract and show what it describes.
plugin-check FILE:
    cargo run --release -- plugin check {{FILE}}

# Fuzz every target for SECONDS each (nightly; `cargo install cargo-fuzz`).
# New corpus entries land in fuzz/corpus and are replayed by `cargo test`.
fuzz SECONDS="600":
    for t in header claims body binding query normalize; do \
      (cd fuzz && cargo +nightly fuzz run "$t" -- -max_total_time={{SECONDS}} -max_len=8192); \
    done
