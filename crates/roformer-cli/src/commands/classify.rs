//! `roformer classify`: labels of a text (or a pair), or of every line of a file.

use anyhow::{Result, bail};
use roformer_infer::Classify;
use roformer_infer::pipelines::ClassifyInput;
use roformer_infer::pipelines::classify::read_classify_inputs;

use crate::args::ClassifyArgs;
use crate::backend;
use crate::output::write_results;

pub fn run(args: ClassifyArgs) -> Result<()> {
    if args.top_k == Some(0) {
        bail!("--top-k must be at least 1");
    }
    let inputs = match (&args.files.input, args.text) {
        (Some(path), _) => read_classify_inputs(path)?,
        (None, Some(text)) => vec![ClassifyInput {
            text,
            text_pair: args.text_pair,
        }],
        (None, None) => bail!("give a text or --input FILE"),
    };
    let device = backend::device()?;
    let pipeline =
        Classify::<backend::Inference>::load(&args.model.model, &device, args.model.precision)?;
    let top_k = args.top_k.unwrap_or(pipeline.model.labels.len());
    let results = pipeline.run(&inputs, top_k)?;
    if let Some(output) = &args.files.output {
        write_results(output, &results)?;
    } else if args.json.json {
        println!("{}", serde_json::to_string_pretty(&results[0])?);
    } else {
        for candidate in &results[0].probabilities {
            println!("{:<16} {:.4}", candidate.label, candidate.probability);
        }
    }
    Ok(())
}
