//! The fuzz corpora (`fuzz/corpus/<target>/`, grown by `cargo +nightly fuzz run <target>`) replayed through
//! the same target bodies (`tokenroute::fuzzing`) on stable: every input the fuzzer kept, and every crash it
//! ever found (saved into the corpus once fixed), runs in every `cargo test`.

use std::path::Path;

/// Runs `target` over every file in its corpus; fails on a panic, naming the input.
fn replay(name: &str, target: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    inputs.sort();
    assert!(
        inputs.iter().any(|p| p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
        "{name}: the corpus lost its hand-made seeds (fuzz/seeds/make_seeds.py)"
    );
    for input in &inputs {
        // A fuzzer running meanwhile replaces inputs by smaller ones: one that vanished is not a failure.
        let Ok(data) = std::fs::read(input) else {
            continue;
        };
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            panic!("{name}: {} fails", input.display());
        }
    }
    eprintln!("{name}: {} inputs replayed", inputs.len());
}

#[test]
fn config_corpus_replays_cleanly() {
    replay("config", tokenroute::fuzzing::config);
}

#[test]
fn authorization_corpus_replays_cleanly() {
    replay("authorization", tokenroute::fuzzing::authorization);
}

#[test]
fn request_extraction_corpus_replays_cleanly() {
    replay("request", tokenroute::fuzzing::request);
}

#[test]
fn response_learning_corpus_replays_cleanly() {
    replay("response", tokenroute::fuzzing::response);
}

#[test]
fn percent_decoding_corpus_replays_cleanly() {
    replay("percent", tokenroute::fuzzing::percent);
}

#[test]
fn snapshot_reader_corpus_replays_cleanly() {
    replay("snapshot", tokenroute::fuzzing::snapshot);
}

#[test]
fn journal_reader_corpus_replays_cleanly() {
    replay("journal", tokenroute::fuzzing::journal);
}

#[test]
fn proxy_protocol_corpus_replays_cleanly() {
    replay("proxy_protocol", tokenroute::fuzzing::proxy_protocol);
}

#[test]
fn node_response_corpus_reads_as_hyper_reads_it() {
    replay("node_response", tokenroute::fuzzing::node_response);
}
