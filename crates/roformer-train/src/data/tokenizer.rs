//! The WordPiece tokenizer: trained on the training split with BERT's normalisation and
//! pre-tokenisation (the `tokenizers` crate), or loaded from a `tokenizer.json` or a BERT
//! `vocab.txt`. [`TextTokenizer`] also knows the ids of the special tokens.

use std::path::Path;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::error::TrainError;

/// BERT's special tokens, in the order they take ids 0..5 in a trained vocabulary.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Ids of the special tokens in a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// `[PAD]`.
    pub pad: u32,
    /// `[UNK]`.
    pub unk: u32,
    /// `[CLS]`.
    pub cls: u32,
    /// `[SEP]`.
    pub sep: u32,
    /// `[MASK]`.
    pub mask: u32,
}

impl SpecialIds {
    /// Whether `id` is one of the special tokens (never masked, never predicted).
    pub fn contains(&self, id: u32) -> bool {
        [self.pad, self.unk, self.cls, self.sep, self.mask].contains(&id)
    }
}

/// A tokenizer with BERT conventions: `[CLS] text [SEP]`.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    special: SpecialIds,
}

fn tokenizer_error(source: &str, error: impl std::fmt::Display) -> TrainError {
    TrainError::Tokenizer {
        source_name: source.to_string(),
        message: error.to_string(),
    }
}

impl TextTokenizer {
    /// Trains a WordPiece vocabulary of at most `vocab_size` entries on `texts`.
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
        min_frequency: u64,
        lowercase: bool,
    ) -> Result<Self, TrainError> {
        let err = |e| tokenizer_error("training", e);
        let mut trainer = WordPieceTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .special_tokens(
                SPECIAL_TOKENS
                    .iter()
                    .map(|t| AddedToken::from(*t, true))
                    .collect(),
            )
            .build();
        let mut tokenizer = TokenizerBuilder::new()
            .with_model(WordPiece::default())
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(None::<BertProcessing>)
            .with_decoder(Some(WordPieceDecoder::default()))
            .build()
            .map_err(err)?;
        tokenizer.train(&mut trainer, texts).map_err(err)?;
        let mut tokenizer = Tokenizer::from(tokenizer);
        let special = special_ids(&tokenizer, "training")?;
        tokenizer.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), special.sep),
            ("[CLS]".into(), special.cls),
        )));
        Ok(Self {
            inner: tokenizer,
            special,
        })
    }

    /// Loads a `tokenizer.json`, or a BERT `vocab.txt` (one token a line) with BERT's
    /// uncased normalisation.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let name = path.display().to_string();
        if !path.is_file() {
            return Err(tokenizer_error(&name, "no such file"));
        }
        let inner = if path.extension().is_some_and(|e| e == "txt") {
            let model = WordPiece::from_file(&path.to_string_lossy())
                .build()
                .map_err(|e| tokenizer_error(&name, e))?;
            let mut tokenizer = Tokenizer::new(model);
            tokenizer
                .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
                .map_err(|e| tokenizer_error(&name, e))?;
            tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
            tokenizer.with_decoder(Some(WordPieceDecoder::default()));
            let special = special_ids(&tokenizer, &name)?;
            tokenizer.with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), special.sep),
                ("[CLS]".into(), special.cls),
            )));
            tokenizer
        } else {
            Tokenizer::from_file(path).map_err(|e| tokenizer_error(&name, e))?
        };
        let special = special_ids(&inner, &name)?;
        Ok(Self { inner, special })
    }

    /// Saves as `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let json = self
            .inner
            .to_string(true)
            .map_err(|e| tokenizer_error(&path.display().to_string(), e))?;
        crate::fs_atomic::write_atomic(path, json.as_bytes())
    }

    /// The special tokens' ids.
    pub fn special(&self) -> SpecialIds {
        self.special
    }

    /// Number of entries in the vocabulary (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text` without special tokens.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, TrainError> {
        self.encode(text, false)
    }

    /// Token ids of `[CLS] text [SEP]`.
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<u32>, TrainError> {
        self.encode(text, true)
    }

    fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>, TrainError> {
        self.inner
            .encode(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| tokenizer_error("encoding", e))
    }

    /// The token of `id`, or `[UNK]`-like `<id>` if the id is outside the vocabulary.
    pub fn token(&self, id: u32) -> String {
        self.inner
            .id_to_token(id)
            .unwrap_or_else(|| format!("<{id}>"))
    }
}

fn special_ids(tokenizer: &Tokenizer, source: &str) -> Result<SpecialIds, TrainError> {
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .ok_or_else(|| tokenizer_error(source, format!("vocabulary has no {token} token")))
    };
    Ok(SpecialIds {
        pad: id("[PAD]")?,
        unk: id("[UNK]")?,
        cls: id("[CLS]")?,
        sep: id("[SEP]")?,
        mask: id("[MASK]")?,
    })
}
