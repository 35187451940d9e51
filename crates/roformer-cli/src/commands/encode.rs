//! `roformer encode`: encoder outputs of a JSON-lines file, saved as safetensors.

use anyhow::Result;
use roformer_infer::Encode;
use roformer_infer::pipelines::{read_encode_lines, write_encoded};

use crate::args::EncodeArgs;
use crate::backend;
use crate::output::with_warnings;

pub fn run(args: EncodeArgs) -> Result<()> {
    let lines = read_encode_lines(&args.input)?;
    let device = backend::device()?;
    let pipeline =
        Encode::<backend::Inference>::load(&args.model.model, &device, args.model.precision)?;
    let encoded = with_warnings(pipeline.run(&lines, args.mlm_logits)?);
    write_encoded(&encoded, &args.output)?;
    eprintln!(
        "wrote {} ({} lines x {} tokens)",
        args.output.display(),
        encoded.shape[0],
        encoded.shape[1]
    );
    Ok(())
}
