//! Packs the shipped Shakespeare corpus (`data/shakespeare`: the works' `.txt` files and
//! `works.tsv`) into one deflate-compressed archive in `OUT_DIR`, which
//! `src/data/shipped_corpus.rs` embeds, so an installed `roformer` trains without the
//! source tree.
//!
//! Archive layout, repeated per file in name order: name length (u32 LE), the name's
//! UTF-8 bytes, content length (u64 LE), the content.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::DeflateEncoder;

fn main() {
    // Read at run time: cargo reuses a compiled build script across clones that share a
    // target directory, and `env!` would bake in the clone it was compiled in.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let corpus = Path::new(&manifest_dir).join("../../data/shakespeare");
    println!("cargo:rerun-if-changed={}", corpus.display());
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e} (the shipped corpus)", corpus.display()))
        .map(|entry| entry.expect("a readable corpus directory").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "txt")
                || path.file_name().is_some_and(|n| n == "works.tsv")
        })
        .collect();
    files.sort();
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("corpus file names are UTF-8");
        let content = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        encoder
            .write_all(&(name.len() as u32).to_le_bytes())
            .and_then(|()| encoder.write_all(name.as_bytes()))
            .and_then(|()| encoder.write_all(&(content.len() as u64).to_le_bytes()))
            .and_then(|()| encoder.write_all(&content))
            .expect("compressing into memory");
    }
    let archive = encoder.finish().expect("compressing into memory");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("shakespeare.deflate");
    std::fs::write(&out, archive).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
