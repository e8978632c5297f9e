//! A smaller shadow stack than Rust's 1 MiB default for wasm: this plugin
//! recurses only as deep as serde_json allows (128 levels), and a compact
//! memory (stack, data and allocation arena in the first MiB) is what the
//! host keeps resident between calls, so every page the plugin touches is
//! reset by a copy instead of being dropped and faulted in again.
fn main() {
    println!("cargo:rustc-link-arg-cdylib=-zstack-size=262144");
}
