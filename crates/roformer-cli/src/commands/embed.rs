//! `roformer embed`: one sentence embedding per input line (a file or stdin).

use anyhow::Result;
use roformer_infer::Embed;
use roformer_infer::pipelines::embed_line;

use crate::args::EmbedArgs;
use crate::backend;
use crate::output::{read_input_lines, with_warnings};

pub fn run(args: EmbedArgs) -> Result<()> {
    let lines: Vec<_> = read_input_lines(args.input)?
        .iter()
        .map(|line| embed_line(line))
        .collect();
    let device = backend::device()?;
    let pipeline =
        Embed::<backend::Inference>::load(&args.model.model, &device, args.model.precision)?;
    for embedding in
        with_warnings(pipeline.run_in_batches(&lines, args.pooling, args.batch_size as usize)?)
    {
        if args.json {
            println!("{}", serde_json::to_string(&embedding)?);
        } else {
            let text: Vec<String> = embedding.iter().map(|v| format!("{v:.6}")).collect();
            println!("{}", text.join(" "));
        }
    }
    Ok(())
}
