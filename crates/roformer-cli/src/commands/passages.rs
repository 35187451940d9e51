//! `roformer passages`: a corpus's works cut into genre-labelled passages.

use anyhow::{Context, Result};
use roformer_infer::json_lines;
use roformer_train::data::genre_passages;

use crate::args::PassagesArgs;

pub fn run(args: PassagesArgs) -> Result<()> {
    let splits = genre_passages(
        args.corpus.as_deref(),
        args.words,
        args.validation_works.as_deref(),
    )?;
    std::fs::create_dir_all(&args.output).with_context(|| args.output.display().to_string())?;
    for (name, passages) in [
        ("train.jsonl", &splits.train),
        ("validation.jsonl", &splits.validation),
    ] {
        let path = args.output.join(name);
        json_lines::write(&path, passages)?;
        let mut works: Vec<&str> = passages.iter().map(|p| p.work.as_str()).collect();
        works.dedup();
        eprintln!(
            "wrote {}: {} passages of {} words from {} works",
            path.display(),
            passages.len(),
            args.words,
            works.len()
        );
    }
    Ok(())
}
