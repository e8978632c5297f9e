//! Replays every input the fuzzers keep (fuzz/corpus/TARGET/*) through the
//! same entry points, on stable Rust, so CI exercises what fuzzing found.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        inputs += 1;
    }
    assert!(inputs > 0, "no corpus for {target}");
}

#[test]
fn header() {
    replay("header", credhost::api::fuzzing::header);
}

#[test]
fn claims() {
    replay("claims", credhost::api::fuzzing::claims);
}

#[test]
fn body() {
    replay("body", credhost::api::fuzzing::body);
}

#[test]
fn binding() {
    replay("binding", credhost::api::fuzzing::binding);
}

#[test]
fn query() {
    replay("query", credhost::api::fuzzing::query);
}

#[test]
fn normalize() {
    replay("normalize", credhost::api::fuzzing::normalize);
}
