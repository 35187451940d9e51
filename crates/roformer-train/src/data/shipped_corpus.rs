//! The Shakespeare corpus built into the binary (`data/shakespeare`, packed and
//! compressed by `build.rs`): the default corpus of `roformer train`, available wherever
//! the binary is, with no files beside it.

use std::io::Read;
use std::sync::OnceLock;

use flate2::read::DeflateDecoder;

/// How errors and messages name the built-in corpus.
pub const SHIPPED_CORPUS_NAME: &str = "the built-in Shakespeare corpus";

static ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shakespeare.deflate"));

/// Every file of the built-in corpus as `(file name, text)`, in name order: the works'
/// `.txt` files and `works.tsv` (title, genre and file of each work).
pub fn shipped_files() -> &'static [(String, String)] {
    static FILES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    FILES.get_or_init(|| unpack(ARCHIVE))
}

/// The text of one file of the built-in corpus, by name (`hamlet.txt`, `works.tsv`).
pub fn shipped_file(name: &str) -> Option<&'static str> {
    shipped_files()
        .iter()
        .find(|(file, _)| file == name)
        .map(|(_, text)| text.as_str())
}

/// Decompresses the archive `build.rs` wrote. It is part of the binary, so a malformed
/// one is a build defect, not an input error.
fn unpack(archive: &[u8]) -> Vec<(String, String)> {
    let mut bytes = Vec::new();
    DeflateDecoder::new(archive)
        .read_to_end(&mut bytes)
        .expect("the built-in corpus decompresses");
    let mut files = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let name = take_field(&mut rest, 4);
        let content = take_field(&mut rest, 8);
        files.push((
            String::from_utf8(name.to_vec()).expect("corpus file names are UTF-8"),
            String::from_utf8(content.to_vec()).expect("corpus files are UTF-8"),
        ));
    }
    files
}

/// Splits a field off the front of `rest`: a little-endian length of `width` bytes, then
/// that many bytes.
fn take_field<'a>(rest: &mut &'a [u8], width: usize) -> &'a [u8] {
    let (len, tail) = rest.split_at(width);
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(len);
    let (field, tail) = tail.split_at(u64::from_le_bytes(le) as usize);
    *rest = tail;
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive holds exactly the files of `data/shakespeare` it was built from, byte
    /// for byte.
    #[test]
    fn built_in_corpus_equals_the_source_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/shakespeare");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".txt") || n == "works.tsv")
            .collect();
        names.sort();
        let shipped: Vec<&str> = shipped_files().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(shipped, names);
        for (name, text) in shipped_files() {
            assert_eq!(
                text,
                &std::fs::read_to_string(dir.join(name)).unwrap(),
                "{name}"
            );
        }
        assert!(
            shipped_file("hamlet.txt")
                .unwrap()
                .contains("To be, or not to be")
        );
    }
}
