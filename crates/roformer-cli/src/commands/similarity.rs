//! `roformer similarity`: the cosine similarity of two texts' sentence embeddings.

use anyhow::Result;
use roformer_infer::Embed;

use crate::args::SimilarityArgs;
use crate::backend;
use crate::output::with_warnings;

pub fn run(args: SimilarityArgs) -> Result<()> {
    let device = backend::device()?;
    let pipeline =
        Embed::<backend::Inference>::load(&args.model.model, &device, args.model.precision)?;
    let similarity = with_warnings(pipeline.similarity(&args.a, &args.b, args.pooling)?);
    println!("{similarity:.6}");
    Ok(())
}
