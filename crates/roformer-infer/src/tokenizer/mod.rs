//! The WordPiece tokenizer: trained on the training split with BERT's normalisation and
//! pre-tokenisation (the `tokenizers` crate's pipeline, our deterministic vocabulary
//! training, see [`wordpiece_trainer`]), or loaded from a `tokenizer.json` or a BERT
//! `vocab.txt`, optionally with jieba word segmentation first (HF's `RoFormerTokenizer`,
//! see [`jieba`]). [`TextTokenizer`] also knows the ids of the special tokens.

mod jieba;
mod wordpiece_trainer;

use std::path::Path;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, Tokenizer,
    TokenizerImpl,
};

use jieba::JiebaPreTokenizer;

use crate::error::InferError;

/// How a vocabulary file is turned into a tokenizer (HF's `tokenizer_config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// Cut the text into words with jieba first (HF `RoFormerTokenizer`).
    pub jieba: bool,
    /// Lower-case (and strip accents from) the text first (HF `do_lower_case`).
    pub lowercase: bool,
}

impl Default for TokenizerOptions {
    /// BERT's uncased tokenizer.
    fn default() -> Self {
        Self {
            jieba: false,
            lowercase: true,
        }
    }
}

/// A WordPiece pipeline whose pre-tokenizer is jieba.
type JiebaTokenizer = TokenizerImpl<
    ModelWrapper,
    NormalizerWrapper,
    JiebaPreTokenizer,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// The `tokenizers` pipeline behind a [`TextTokenizer`].
#[derive(Clone)]
enum Pipeline {
    /// Anything a `tokenizer.json` can express (BERT pre-tokenisation included).
    Standard(Tokenizer),
    /// WordPiece after jieba segmentation, which `tokenizer.json` cannot express.
    Jieba(JiebaTokenizer),
}

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

/// One token of a text and where it lies (HF `tokenizers`' offsets, in characters).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenSpan {
    /// Its id.
    pub id: u32,
    /// The token as the vocabulary spells it.
    pub text: String,
    /// Whether it is a special token (`[CLS]`, `[SEP]`, …).
    pub special: bool,
    /// Its first character in the text.
    pub start: usize,
    /// One past its last character.
    pub stop: usize,
}

/// A tokenizer with BERT conventions: `[CLS] text [SEP]`.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Pipeline,
    special: SpecialIds,
}

fn tokenizer_error(source: &str, error: impl std::fmt::Display) -> InferError {
    InferError::Tokenizer {
        source_name: source.to_string(),
        message: error.to_string(),
    }
}

impl TextTokenizer {
    /// Trains a WordPiece vocabulary of at most `vocab_size` entries on `texts` (fewer if
    /// no pair of symbols occurs `min_frequency` times; more if the special tokens and the
    /// characters alone exceed it). The same texts and settings give the same vocabulary.
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
        min_frequency: u64,
        lowercase: bool,
    ) -> Result<Self, InferError> {
        let err = |e| tokenizer_error("training", e);
        let normalizer = BertNormalizer::new(true, true, None, lowercase);
        let words = wordpiece_trainer::count_words(texts, &normalizer, &BertPreTokenizer)?;
        let vocab =
            wordpiece_trainer::train_vocabulary(&words, &SPECIAL_TOKENS, vocab_size, min_frequency);
        let mut tokenizer = Tokenizer::new(wordpiece_trainer::wordpiece_model(&vocab)?);
        tokenizer
            .with_normalizer(Some(normalizer))
            .map_err(err)?
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_decoder(Some(WordPieceDecoder::default()));
        tokenizer
            .add_special_tokens(special_added_tokens())
            .map_err(err)?;
        let special = special_ids(|t| tokenizer.token_to_id(t), "training")?;
        tokenizer.with_post_processor(Some(bert_processing(special)));
        Ok(Self {
            inner: Pipeline::Standard(tokenizer),
            special,
        })
    }

    /// Loads a `tokenizer.json`, or a BERT `vocab.txt` (one token a line) with BERT's
    /// uncased normalisation.
    pub fn from_file(path: &Path) -> Result<Self, InferError> {
        Self::load(path, TokenizerOptions::default())
    }

    /// Loads a `tokenizer.json` or a BERT `vocab.txt` with `options`. Without jieba, a
    /// `tokenizer.json` is used as it is (its own normalisation); with jieba, only its
    /// vocabulary is, as HF's `RoFormerTokenizer` does.
    pub fn load(path: &Path, options: TokenizerOptions) -> Result<Self, InferError> {
        let name = path.display().to_string();
        let err = |e| tokenizer_error(&name, e);
        if !path.is_file() {
            return Err(tokenizer_error(&name, "no such file"));
        }
        let is_vocab_txt = path.extension().is_some_and(|e| e == "txt");
        if !options.jieba && !is_vocab_txt {
            let inner = Tokenizer::from_file(path).map_err(err)?;
            let special = special_ids(|t| inner.token_to_id(t), &name)?;
            return Ok(Self {
                inner: Pipeline::Standard(inner),
                special,
            });
        }
        let model = if is_vocab_txt {
            WordPiece::from_file(&path.to_string_lossy())
                .unk_token("[UNK]".into())
                .build()
                .map_err(err)?
        } else {
            match Tokenizer::from_file(path).map_err(err)?.get_model() {
                ModelWrapper::WordPiece(wordpiece) => wordpiece.clone(),
                _ => {
                    return Err(tokenizer_error(
                        &name,
                        "jieba segmentation needs a WordPiece vocabulary",
                    ));
                }
            }
        };
        let vocab = tokenizers::Model::get_vocab(&model);
        let special = special_ids(|t| vocab.get(t).copied(), &name)?;
        let words: Vec<String> = vocab.into_keys().collect();
        let specials = special_added_tokens();
        let processor = bert_processing(special);
        let inner = if options.jieba {
            // HF: BertNormalizer without CJK spacing (jieba must see whole words).
            let mut tokenizer = JiebaTokenizer::new(model.into());
            tokenizer
                .with_normalizer(Some(BertNormalizer::new(
                    true,
                    false,
                    None,
                    options.lowercase,
                )))
                .map_err(err)?
                .with_pre_tokenizer(Some(JiebaPreTokenizer::new(words)))
                .with_post_processor(Some(processor))
                .with_decoder(Some(WordPieceDecoder::default()));
            tokenizer.add_special_tokens(specials).map_err(err)?;
            Pipeline::Jieba(tokenizer)
        } else {
            let mut tokenizer = Tokenizer::new(model);
            tokenizer
                .with_normalizer(Some(BertNormalizer::new(
                    true,
                    true,
                    None,
                    options.lowercase,
                )))
                .map_err(err)?
                .with_pre_tokenizer(Some(BertPreTokenizer))
                .with_post_processor(Some(processor))
                .with_decoder(Some(WordPieceDecoder::default()));
            tokenizer.add_special_tokens(specials).map_err(err)?;
            Pipeline::Standard(tokenizer)
        };
        Ok(Self { inner, special })
    }

    /// Whether the text is lower-cased before tokenization.
    pub fn lowercases(&self) -> bool {
        let normalizer = match &self.inner {
            Pipeline::Standard(tokenizer) => tokenizer.get_normalizer(),
            Pipeline::Jieba(tokenizer) => tokenizer.get_normalizer(),
        };
        match normalizer {
            Some(NormalizerWrapper::BertNormalizer(bert)) => bert.lowercase,
            Some(NormalizerWrapper::Lowercase(_)) => true,
            _ => false,
        }
    }

    /// Whether words are cut with jieba first.
    pub fn uses_jieba(&self) -> bool {
        matches!(self.inner, Pipeline::Jieba(_))
    }

    /// Saves as `tokenizer.json`. A jieba tokenizer is saved with BERT pre-tokenisation
    /// in its place, as HF saves its `RoFormerTokenizer` (the JSON format cannot express
    /// jieba); [`TokenizerOptions`] restores it on loading.
    pub fn save(&self, path: &Path) -> Result<(), InferError> {
        let err = |e| tokenizer_error(&path.display().to_string(), e);
        let json = match &self.inner {
            Pipeline::Standard(tokenizer) => tokenizer.to_string(true).map_err(err)?,
            Pipeline::Jieba(tokenizer) => {
                let mut standard = Tokenizer::new(tokenizer.get_model().clone());
                standard
                    .with_normalizer(tokenizer.get_normalizer().cloned())
                    .map_err(err)?
                    .with_pre_tokenizer(Some(BertPreTokenizer))
                    .with_post_processor(tokenizer.get_post_processor().cloned())
                    .with_decoder(tokenizer.get_decoder().cloned());
                standard
                    .add_special_tokens(special_added_tokens())
                    .map_err(err)?;
                standard.to_string(true).map_err(err)?
            }
        };
        crate::fs_atomic::write_atomic(path, json.as_bytes())
    }

    /// The vocabulary in id order, one token per id, when the model is WordPiece with ids
    /// `0..n` (what a BERT `vocab.txt` holds); `None` otherwise.
    pub fn wordpiece_vocab(&self) -> Option<Vec<String>> {
        let model = match &self.inner {
            Pipeline::Standard(tokenizer) => tokenizer.get_model(),
            Pipeline::Jieba(tokenizer) => tokenizer.get_model(),
        };
        let ModelWrapper::WordPiece(wordpiece) = model else {
            return None;
        };
        let vocab = tokenizers::Model::get_vocab(wordpiece);
        let mut tokens = vec![None; vocab.len()];
        for (token, id) in vocab {
            *tokens.get_mut(id as usize)? = Some(token);
        }
        tokens.into_iter().collect()
    }

    /// The special tokens' ids.
    pub fn special(&self) -> SpecialIds {
        self.special
    }

    /// Number of entries in the vocabulary (added tokens included).
    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Pipeline::Standard(tokenizer) => tokenizer.get_vocab_size(true),
            Pipeline::Jieba(tokenizer) => tokenizer.get_vocab_size(true),
        }
    }

    /// Token ids of `text` without special tokens.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, InferError> {
        self.encode(text, false)
    }

    /// Token ids of `[CLS] text [SEP]`.
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<u32>, InferError> {
        self.encode(text, true)
    }

    fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>, InferError> {
        let encoding = match &self.inner {
            Pipeline::Standard(tokenizer) => tokenizer.encode(text, special),
            Pipeline::Jieba(tokenizer) => tokenizer.encode(text, special),
        };
        encoding
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| tokenizer_error("encoding", e))
    }

    /// The tokens of `text` (with `[CLS]`/`[SEP]` when `special`) and where each lies in
    /// it, in characters (a special token covers nothing: start = stop).
    pub fn spans(&self, text: &str, special: bool) -> Result<Vec<TokenSpan>, InferError> {
        let encoding = match &self.inner {
            Pipeline::Standard(tokenizer) => tokenizer.encode_char_offsets(text, special),
            Pipeline::Jieba(tokenizer) => tokenizer.encode_char_offsets(text, special),
        }
        .map_err(|e| tokenizer_error("encoding", e))?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_tokens())
            .zip(encoding.get_offsets())
            .zip(encoding.get_special_tokens_mask())
            .map(|(((&id, token), &(start, stop)), &special)| TokenSpan {
                id,
                text: token.clone(),
                special: special == 1,
                start,
                stop,
            })
            .collect())
    }

    /// The token of `id`, or `[UNK]`-like `<id>` if the id is outside the vocabulary.
    pub fn token(&self, id: u32) -> String {
        let token = match &self.inner {
            Pipeline::Standard(tokenizer) => tokenizer.id_to_token(id),
            Pipeline::Jieba(tokenizer) => tokenizer.id_to_token(id),
        };
        token.unwrap_or_else(|| format!("<{id}>"))
    }
}

/// The special tokens as `tokenizers` added tokens (matched whole, never normalised).
fn special_added_tokens() -> Vec<AddedToken> {
    SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect()
}

/// BERT's `[CLS] text [SEP]` template.
fn bert_processing(special: SpecialIds) -> BertProcessing {
    BertProcessing::new(("[SEP]".into(), special.sep), ("[CLS]".into(), special.cls))
}

fn special_ids(
    token_to_id: impl Fn(&str) -> Option<u32>,
    source: &str,
) -> Result<SpecialIds, InferError> {
    let id = |token: &str| {
        token_to_id(token)
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
