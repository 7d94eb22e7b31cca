//! The SCAN vocabulary JSON (`word2idx`, `idx2word`, `idx`), as shipped with the datasets.
//!
//! Ids always come from the file, never from rebuilding: the official ids follow the builder's dict
//! order. Like the official loader, `<mask>` is appended after the file's words (id = `idx`).

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use crate::tokenizer::tokenize;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const PAD: u32 = 0;
pub const START: u32 = 1;
pub const END: u32 = 2;
pub const UNK: u32 = 3;
const SPECIALS: [&str; 4] = ["<pad>", "<start>", "<end>", "<unk>"];
const MASK: &str = "<mask>";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabFile {
    // Ordered maps: a saved vocabulary is byte-identical from run to run.
    word2idx: BTreeMap<String, u32>,
    idx2word: BTreeMap<String, String>,
    idx: usize,
}

/// Word ↔ id mapping, `<mask>` included.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    word2idx: HashMap<String, u32>,
    idx2word: Vec<String>,
}

impl Vocab {
    /// Reads a SCAN vocabulary file and appends `<mask>`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let file: VocabFile = serde_json::from_str(&text).map_err(|e| {
            DataError::invalid(
                path,
                format!("not a SCAN vocabulary (JSON with word2idx, idx2word, idx): {e}"),
            )
        })?;
        Self::from_file(file).map_err(|msg| DataError::invalid(path, msg))
    }

    fn from_file(file: VocabFile) -> std::result::Result<Self, String> {
        if file.word2idx.len() != file.idx || file.idx2word.len() != file.idx {
            return Err(format!(
                "idx says {} words but word2idx has {} and idx2word {}",
                file.idx,
                file.word2idx.len(),
                file.idx2word.len()
            ));
        }
        let mut idx2word = vec![None; file.idx];
        for (id, word) in &file.idx2word {
            let slot = id
                .parse::<usize>()
                .ok()
                .and_then(|i| idx2word.get_mut(i))
                .ok_or_else(|| format!("idx2word has an invalid id {id:?}"))?;
            *slot = Some(word.clone());
        }
        let idx2word: Vec<String> = idx2word
            .into_iter()
            .enumerate()
            .map(|(i, w)| w.ok_or_else(|| format!("idx2word has no word for id {i}")))
            .collect::<std::result::Result<_, _>>()?;
        for (word, &id) in &file.word2idx {
            if idx2word.get(id as usize) != Some(word) {
                return Err(format!("word2idx[{word:?}] = {id} disagrees with idx2word"));
            }
        }
        for (id, special) in SPECIALS.iter().enumerate() {
            if idx2word.get(id).map(String::as_str) != Some(*special) {
                return Err(format!("id {id} must be the special token {special}"));
            }
        }
        Ok(Self::with_mask(idx2word))
    }

    /// Builds a vocabulary from words in id order (the four specials first), appending `<mask>`.
    pub fn from_words(words: &[&str]) -> Self {
        let mut idx2word: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        idx2word.extend(words.iter().map(|w| w.to_string()));
        Self::with_mask(idx2word)
    }

    fn with_mask(mut idx2word: Vec<String>) -> Self {
        idx2word.push(MASK.to_string());
        let word2idx = idx2word
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Self { word2idx, idx2word }
    }

    /// Writes the SCAN file format (without `<mask>`, which loading appends), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let words = &self.idx2word[..self.idx2word.len() - 1];
        let file = VocabFile {
            word2idx: words
                .iter()
                .enumerate()
                .map(|(i, w)| (w.clone(), i as u32))
                .collect(),
            idx2word: words
                .iter()
                .enumerate()
                .map(|(i, w)| (i.to_string(), w.clone()))
                .collect(),
            idx: words.len(),
        };
        let json =
            serde_json::to_vec(&file).map_err(|e| DataError::invalid(path, e.to_string()))?;
        write_atomic(path, &json)
    }

    /// The model's vocabulary size, `<mask>` included (8,482 for Flickr30K, 11,354 for MSCOCO).
    pub fn len(&self) -> usize {
        self.idx2word.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idx2word.is_empty()
    }

    pub fn mask_id(&self) -> u32 {
        (self.idx2word.len() - 1) as u32
    }

    /// The id of `word`, `<unk>` when unknown.
    pub fn id(&self, word: &str) -> u32 {
        self.word2idx.get(word).copied().unwrap_or(UNK)
    }

    pub fn contains(&self, word: &str) -> bool {
        self.word2idx.contains_key(word)
    }

    pub fn word(&self, id: u32) -> Option<&str> {
        self.idx2word.get(id as usize).map(String::as_str)
    }

    /// `<start>` + the ids of the caption's NLTK tokens + `<end>`.
    pub fn encode(&self, caption: &str) -> Vec<u32> {
        let tokens = tokenize(caption);
        let mut ids = Vec::with_capacity(tokens.len() + 2);
        ids.push(START);
        ids.extend(tokens.iter().map(|t| self.id(t)));
        ids.push(END);
        ids
    }
}
