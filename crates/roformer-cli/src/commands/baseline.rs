//! `roformer baseline`: majority-label and bag-of-words scores of a fine-tuning config.

use anyhow::{Result, bail};
use roformer_train::finetune::baseline::baselines;
use roformer_train::finetune::{FinetuneConfig, TaskType};

use crate::args::BaselineArgs;

pub fn run(args: BaselineArgs) -> Result<()> {
    let config = FinetuneConfig::from_file(&args.config)?;
    if config.task.kind == TaskType::TokenClassification {
        bail!(
            "{}: `roformer baseline` scores sequence-classification and sentence-pair tasks (a token-classification run reports its majority-label baseline)",
            args.config.display()
        );
    }
    let result = baselines(&config)?;
    println!(
        "{} training / {} validation examples, labels [{}], inputs truncated to {} tokens",
        result.examples.0,
        result.examples.1,
        result.labels.join(", "),
        config.task.max_seq_len
    );
    for (name, scores) in [
        ("majority label", &result.majority),
        ("bag-of-words naive Bayes", &result.bag_of_words),
    ] {
        println!(
            "{name:<26} accuracy {:.3}, macro-F1 {:.3}",
            scores.accuracy, scores.macro_f1
        );
    }
    Ok(())
}
