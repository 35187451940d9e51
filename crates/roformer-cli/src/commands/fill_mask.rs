//! `roformer fill-mask`: the most likely tokens for each `[MASK]` of a text.

use anyhow::{Result, bail};
use roformer_infer::FillMask;

use crate::args::FillMaskArgs;
use crate::backend;
use crate::output::with_warnings;

pub fn run(args: FillMaskArgs) -> Result<()> {
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let device = backend::device()?;
    let pipeline =
        FillMask::<backend::Inference>::load(&args.model.model, &device, args.model.precision)?;
    let predictions = with_warnings(pipeline.run(&args.text, args.top_k)?);
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&predictions)?);
        return Ok(());
    }
    for (index, prediction) in predictions.iter().enumerate() {
        println!("[MASK] #{} (token {}):", index + 1, prediction.position);
        for candidate in &prediction.candidates {
            println!("  {:<16} {:.4}", candidate.token, candidate.probability);
        }
    }
    Ok(())
}
