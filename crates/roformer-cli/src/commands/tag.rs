//! `roformer tag`: a label per word of a text, or of every line of a file.

use anyhow::{Result, bail};
use roformer_infer::Tag;
use roformer_infer::pipelines::Tagging;
use roformer_infer::pipelines::tag::{read_tag_inputs, words_of};

use crate::args::TagArgs;
use crate::backend;
use crate::output::write_results;

pub fn run(args: TagArgs) -> Result<()> {
    let inputs = match (&args.files.input, &args.text) {
        (Some(path), _) => read_tag_inputs(path)?,
        (None, Some(text)) => {
            let words = words_of(text);
            if words.is_empty() {
                bail!("the text has no words");
            }
            vec![words]
        }
        (None, None) => bail!("give a text or --input FILE"),
    };
    let device = backend::device()?;
    let pipeline =
        Tag::<backend::Inference>::load(&args.model.model, &device, args.model.precision)?;
    let results = pipeline.run(&inputs)?;
    if let Some(output) = &args.files.output {
        write_results(output, &results)?;
    } else if args.json.json {
        println!("{}", serde_json::to_string_pretty(&results[0])?);
    } else {
        print_tagging(&results[0]);
    }
    Ok(())
}

fn print_tagging(tagging: &Tagging) {
    for word in &tagging.words {
        println!(
            "{:<20} {:<12} {:.4}",
            word.word, word.label, word.probability
        );
    }
    for entity in tagging.entities.iter().flatten() {
        println!(
            "entity {:<8} {} (words {}..{})",
            entity.kind, entity.text, entity.start, entity.end
        );
    }
}
