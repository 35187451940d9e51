//! Turning text into masked-LM examples: consecutive non-empty lines are packed into
//! sequences of at most `max_seq_len` tokens (`[CLS] … [SEP]`), so examples have varied
//! lengths and batches are padded; a line longer than that is cut into pieces.

use crate::error::TrainError;
use roformer_infer::tokenizer::TextTokenizer;

/// Packs the lines of `text` into token sequences, each wrapped in `[CLS]`/`[SEP]`.
pub fn pack_lines(
    text: &str,
    tokenizer: &TextTokenizer,
    max_seq_len: usize,
) -> Result<Vec<Vec<u32>>, TrainError> {
    let special = tokenizer.special();
    let budget = max_seq_len - 2;
    let mut sequences = Vec::new();
    let mut current: Vec<u32> = Vec::with_capacity(budget);
    let mut flush = |current: &mut Vec<u32>| {
        if !current.is_empty() {
            let mut sequence = Vec::with_capacity(current.len() + 2);
            sequence.push(special.cls);
            sequence.append(current);
            sequence.push(special.sep);
            sequences.push(sequence);
        }
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let ids = tokenizer.encode_plain(line)?;
        if current.len() + ids.len() > budget {
            flush(&mut current);
        }
        for piece in ids.chunks(budget) {
            if current.len() + piece.len() > budget {
                flush(&mut current);
            }
            current.extend_from_slice(piece);
        }
    }
    flush(&mut current);
    Ok(sequences)
}
