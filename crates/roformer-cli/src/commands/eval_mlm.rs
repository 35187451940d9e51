//! `roformer eval-mlm`: masked-LM loss and accuracy at several sequence lengths.

use anyhow::{Result, bail};
use roformer_infer::model_dir::{InPrecision, load_model};
use roformer_train::eval_mlm::{
    EvalMlmOptions, LengthScore, eval_mlm, eval_text, run_config, text_tokens, trained_length,
};

use crate::args::EvalMlmArgs;
use crate::backend;

pub fn run(args: EvalMlmArgs) -> Result<()> {
    if let Some(&short) = args.seq.iter().find(|&&n| n < 3) {
        bail!("--seq: each length must be at least 3 ([CLS], a token, [SEP]), got {short}");
    }
    if args.trained_length == Some(0) {
        bail!("--trained-length must be positive");
    }
    let device = backend::device()?;
    let dir = &args.model.model;
    let loaded = load_model::<backend::Inference>(dir, &device)?
        .in_precision(args.model.precision, &device)?;
    let Some(model) = loaded.weights.masked_lm() else {
        bail!(
            "{}: the checkpoint has no masked-LM head (no `cls.` tensors)",
            dir.display()
        );
    };
    let run = run_config(dir)?;
    let text = eval_text(args.text.as_deref(), run.as_ref())?;
    let tokenizer = loaded.tokenizer()?;
    let tokens = text_tokens(tokenizer, &text.text, args.tokens)?;
    let trained_length = trained_length(args.trained_length, run.as_ref(), &loaded.config);
    let options = EvalMlmOptions {
        lengths: args.seq.clone(),
        scaling: args.scaling,
        trained_length,
        max_tokens: args.tokens,
        mask_probability: 0.15,
        seed: args.seed,
        batch_size: args.batch,
    };
    let scores = eval_mlm(&loaded.config, model, tokenizer, &tokens, &options, &device)?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
        return Ok(());
    }
    println!(
        "{} tokens of {}; trained length {trained_length}; scaling {:?}",
        tokens.len(),
        text.source,
        args.scaling
    );
    print_table(&scores);
    Ok(())
}

fn print_table(scores: &[LengthScore]) {
    println!(
        "{:>7} {:>9} {:>8} {:>8} {:>9}",
        "length", "sequences", "masked", "loss", "accuracy"
    );
    for score in scores {
        match (score.loss, score.accuracy, &score.skipped) {
            (Some(loss), Some(accuracy), _) => println!(
                "{:>7} {:>9} {:>8} {loss:>8.3} {accuracy:>9.3}",
                score.length, score.sequences, score.masked_tokens
            ),
            (_, _, skipped) => println!(
                "{:>7} {:>9} {:>8}   n/a: {}",
                score.length,
                score.sequences,
                score.masked_tokens,
                skipped.as_deref().unwrap_or("not evaluated")
            ),
        }
    }
}
