//! The CLIP tokenizer through the `tokenizers` crate, identical to transformers' `CLIPTokenizer`: from the folder's
//! `tokenizer.json`, or built from `vocab.json` + `merges.txt` the way transformers builds it
//! (models/clip/tokenization_clip.py: NFC, whitespace collapse, lowercase; CLIP's split regex; byte-level BPE with
//! `</w>` word ends).
//!
//! Textual-inversion embeddings extend it: their names, tokenized as usual, map to the ids of their vectors, which
//! the text encoder's session holds as extra rows of its token table (see [`crate::text::EmbeddingLibrary`]).

use std::collections::HashMap;
use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Model, SplitDelimiterBehavior, Tokenizer};

use crate::error::{EngineError, Result};

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
/// CLIP's context: 77 positions including BOS and EOS.
const CONTEXT_LENGTH: usize = 77;
/// The comma as a whole word: long prompts are cut after one (A1111's `comma_token`).
const COMMA: &str = ",</w>";
const CLIP_SPLIT_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

pub struct ClipTokenizer {
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
    comma: Option<u32>,
    max_length: usize,
    /// Textual-inversion embeddings known to the text encoder session, and where each is in `embeddings` by the
    /// first id of its name, longest name first (A1111's `EmbeddingDatabase.ids_lookup`).
    embeddings: Vec<EmbeddingTokens>,
    embeddings_by_first_id: HashMap<u32, Vec<usize>>,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("max_length", &self.max_length)
            .field("embeddings", &self.embeddings.len())
            .finish()
    }
}

impl ClipTokenizer {
    pub fn from_folder(folder: &Path) -> Result<ClipTokenizer> {
        let json = folder.join("tokenizer.json");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| invalid(&json, e))?
        } else {
            build_from_vocab_and_merges(folder)?
        };
        // Padding and truncation are done here, to CLIP's context, whatever the file says.
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| invalid(folder, e))?;
        let config = read_tokenizer_config(folder)?;
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| EngineError::InvalidConfigFile {
                path: folder.to_path_buf(),
                reason: format!("the vocabulary has no token {token:?}"),
            })
        };
        let bos = id(BOS)?;
        let eos = id(EOS)?;
        // SD 1.x pads with <|endoftext|>, SD 2.x with "!" (id 0): the tokenizer's config says which.
        let pad = id(config.pad_token.as_deref().unwrap_or(EOS))?;
        let max_length =
            config.model_max_length.filter(|&n| (2..=CONTEXT_LENGTH).contains(&n)).unwrap_or(CONTEXT_LENGTH);
        let comma = inner.token_to_id(COMMA);
        Ok(ClipTokenizer {
            inner,
            bos,
            eos,
            pad,
            comma,
            max_length,
            embeddings: Vec::new(),
            embeddings_by_first_id: HashMap::new(),
        })
    }

    /// The number of ids [`encode`](Self::encode) returns (77 for CLIP).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The id of "," as a word, where long prompts are preferably cut.
    pub fn comma_id(&self) -> Option<u32> {
        self.comma
    }

    /// The textual-inversion embeddings prompts can use, by name.
    pub fn embeddings(&self) -> &[EmbeddingTokens] {
        &self.embeddings
    }

    /// Makes `embeddings` usable in prompts; their ids must be those the text encoder session was given.
    pub(crate) fn set_embeddings(&mut self, embeddings: Vec<EmbeddingTokens>) {
        let mut by_first_id: HashMap<u32, Vec<usize>> = HashMap::new();
        for (index, embedding) in embeddings.iter().enumerate() {
            if let Some(&first) = embedding.name_ids.first() {
                by_first_id.entry(first).or_default().push(index);
            }
        }
        for indices in by_first_id.values_mut() {
            indices.sort_by_key(|&i| std::cmp::Reverse(embeddings[i].name_ids.len()));
        }
        self.embeddings = embeddings;
        self.embeddings_by_first_id = by_first_id;
    }

    /// The embedding whose name's tokens start at `tokens[position]`, longest name first
    /// (`EmbeddingDatabase.find_embedding_at_position`).
    pub(crate) fn embedding_at(&self, tokens: &[u32], position: usize) -> Option<&EmbeddingTokens> {
        let candidates = self.embeddings_by_first_id.get(tokens.get(position)?)?;
        candidates
            .iter()
            .map(|&i| &self.embeddings[i])
            .find(|embedding| tokens[position..].starts_with(&embedding.name_ids))
    }

    /// Token ids of `text` without BOS, EOS or padding.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| EngineError::parameter("prompt", abbreviate(text), e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `tokenizer(text, padding="max_length", max_length=77, truncation=True)`: BOS, at most 75 tokens, EOS, padding.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut tokens = self.tokenize(text)?;
        tokens.truncate(self.max_length - 2);
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos);
        ids.extend(tokens);
        ids.push(self.eos);
        ids.resize(self.max_length, self.pad);
        Ok(ids)
    }
}

fn invalid(path: &Path, error: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidConfigFile { path: path.to_path_buf(), reason: error.to_string() }
}

fn abbreviate(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{short:?}")
}

fn build_from_vocab_and_merges(folder: &Path) -> Result<Tokenizer> {
    let vocab = folder.join("vocab.json");
    let merges = folder.join("merges.txt");
    let path_str = |p: &Path| p.to_str().map(str::to_owned).ok_or_else(|| invalid(p, "the path is not valid UTF-8"));
    let bpe = BPE::from_file(&path_str(&vocab)?, &path_str(&merges)?)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix("</w>".into())
        .unk_token(EOS.into())
        .build()
        .map_err(|e| invalid(&vocab, e))?;
    let bos_id = bpe.token_to_id(BOS).ok_or_else(|| invalid(&vocab, format!("no {BOS} token")))?;
    let eos_id = bpe.token_to_id(EOS).ok_or_else(|| invalid(&vocab, format!("no {EOS} token")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let whitespace = Replace::new(ReplacePattern::Regex(r"\s+".into()), " ").map_err(|e| invalid(folder, e))?;
    tokenizer.with_normalizer(Some(NormalizerSequence::new(vec![NFC.into(), whitespace.into(), Lowercase.into()])));
    let split = Split::new(SplitPattern::Regex(CLIP_SPLIT_PATTERN.into()), SplitDelimiterBehavior::Removed, true)
        .map_err(|e| invalid(folder, e))?;
    // transformers' ByteLevel(add_prefix_space=False) keeps its defaults trim_offsets=True, use_regex=True.
    tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.with_post_processor(Some(
        RobertaProcessing::new((EOS.into(), eos_id), (BOS.into(), bos_id)).trim_offsets(false).add_prefix_space(false),
    ));
    tokenizer.add_special_tokens(&[AddedToken::from(BOS, true), AddedToken::from(EOS, true)]);
    Ok(tokenizer)
}

#[derive(Default)]
struct TokenizerConfig {
    pad_token: Option<String>,
    model_max_length: Option<usize>,
}

/// `pad_token` and `model_max_length` from tokenizer_config.json, else special_tokens_map.json.
fn read_tokenizer_config(folder: &Path) -> Result<TokenizerConfig> {
    let mut config = TokenizerConfig::default();
    for name in ["special_tokens_map.json", "tokenizer_config.json"] {
        let path = folder.join(name);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| EngineError::ReadFile { path: path.clone(), reason: e.to_string() })?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(&path, e))?;
        // A token is written either as a string or as {"content": "..."}.
        let pad = value.get("pad_token").and_then(|t| t.as_str().or_else(|| t.get("content").and_then(|c| c.as_str())));
        if let Some(pad) = pad {
            config.pad_token = Some(pad.to_string());
        }
        if let Some(length) = value.get("model_max_length").and_then(|v| v.as_u64()) {
            config.model_max_length = usize::try_from(length).ok();
        }
    }
    Ok(config)
}

/// How the tokenizer finds an embedding: the usual tokens of its name, and the ids of its vectors in the text
/// encoder's extended token table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingTokens {
    pub name: String,
    pub(crate) name_ids: Vec<u32>,
    pub(crate) ids: Vec<u32>,
}

impl EmbeddingTokens {
    pub(crate) fn new(name: &str, name_ids: Vec<u32>, ids: Vec<u32>) -> EmbeddingTokens {
        EmbeddingTokens { name: name.to_string(), name_ids, ids }
    }
}
