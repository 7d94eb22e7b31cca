//! Queries against a gallery index: a caption retrieving images, or a gallery image retrieving
//! captions. The first stage ranks the whole gallery from the index; the model re-ranks the
//! shortlist exactly.

use crate::encode::floats;
use crate::index::{
    Index, CAPTIONS, CAPTION_GLOBALS, CAPTION_VECTORS, IMAGES, IMAGE_GLOBALS, IMAGE_VECTORS,
};
use crate::shortlist::{maxsim, summary, top_k, FirstStage};
use burn::tensor::{Device, Tensor};
use rcar_backbones::matcher::Globals;
use rcar_backbones::Matcher;
use rcar_data::batch::TokenBatch;
use rcar_data::tokenizer::tokenize;
use std::fmt;
use std::time::Instant;

/// What is asked.
pub enum Query<'a> {
    /// A caption: images are retrieved.
    Text(&'a str),
    /// A gallery image by its id: captions are retrieved.
    Image(u64),
}

/// A query that cannot be answered, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// The text has no token at all.
    Empty,
    /// Every word is outside the vocabulary: the model would see only `<unk>`.
    NoKnownWord(Vec<String>),
    /// No gallery image has this id.
    NoSuchImage(u64),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the query has no words"),
            Self::NoKnownWord(words) => write!(
                f,
                "no word of the query is in the index's vocabulary ({}): the model would read only <unk>",
                words.join(", ")
            ),
            Self::NoSuchImage(id) => write!(f, "no image of the gallery has id {id}"),
        }
    }
}

impl std::error::Error for QueryError {}

/// One retrieved item.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub rank: usize,
    /// The image (position in the gallery) and its id: the hit itself, or the hit caption's image.
    pub image: usize,
    pub image_id: u64,
    /// The hit caption (protocol number), for image queries.
    pub caption: Option<usize>,
    /// The model's exact score.
    pub score: f32,
    /// The first stage's score.
    pub first_stage: f32,
}

/// The hits, what the query was read as, and where the time went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer {
    pub hits: Vec<Hit>,
    /// Query words outside the vocabulary (read as `<unk>`).
    pub unknown_words: Vec<String>,
    /// Pairs the model scored.
    pub pairs: usize,
    pub encode_seconds: f64,
    pub first_stage_seconds: f64,
    pub rerank_seconds: f64,
}

/// How to search: hits wanted, shortlist length (the whole gallery when `None`), first stage.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    pub top: usize,
    pub shortlist: Option<usize>,
    pub stage: FirstStage,
}

/// Answers `query` from `index` with `model`, which must be the one that built the index
/// ([`Index::check_model`]).
pub fn search(
    index: &Index,
    model: &Matcher,
    query: Query,
    opts: SearchOptions,
    device: &Device,
) -> Result<Answer, QueryError> {
    match query {
        Query::Text(text) => by_text(index, model, text, opts, device),
        Query::Image(id) => by_image(index, model, id, opts, device),
    }
}

/// The shortlist of `first` (all when `opts.shortlist` is `None`).
fn shortlist(first: &[f32], opts: SearchOptions) -> Vec<usize> {
    top_k(first, opts.shortlist.unwrap_or(first.len()))
}

/// The `top` best of the shortlisted `items` by exact score, best first.
fn best(items: &[usize], exact: &[f32], first: &[f32], top: usize) -> Vec<(usize, f32, f32)> {
    top_k(exact, top)
        .into_iter()
        .map(|k| (items[k], exact[k], first[items[k]]))
        .collect()
}

fn by_text(
    index: &Index,
    model: &Matcher,
    text: &str,
    opts: SearchOptions,
    device: &Device,
) -> Result<Answer, QueryError> {
    let vocab = index.vocab();
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Err(QueryError::Empty);
    }
    let unknown: Vec<String> = tokens
        .iter()
        .filter(|t| !vocab.contains(t))
        .cloned()
        .collect();
    if unknown.len() == tokens.len() {
        return Err(QueryError::NoKnownWord(unknown));
    }
    let started = Instant::now();
    let ids = vocab.encode(text);
    let len = ids.len();
    let words = model.encode_tokens(&TokenBatch::pad(&[ids]), device);
    let global = model.caption_globals(words.clone(), &[len]);
    let encode_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let first = floats(match opts.stage {
        FirstStage::Global => {
            let query = summary(words.clone(), Some(&[len]), global.clone());
            let gallery: Tensor<2> = index.rows(IMAGE_VECTORS, None, device);
            gallery.matmul(query.transpose())
        }
        FirstStage::MaxSim => maxsim(index.rows(IMAGES, None, device), &words, &[len], 0..1).0,
    });
    let items = shortlist(&first, opts);
    let first_stage_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let images: Tensor<3> = index.rows(IMAGES, Some(&items), device);
    let globals = index
        .optional_rows(IMAGE_GLOBALS, Some(&items), device)
        .zip(global)
        .map(|(images, captions)| Globals { images, captions });
    let all: Vec<usize> = (0..items.len()).collect();
    let exact = floats(model.selection(&images, &words, &[len], globals.as_ref(), (&all, &[0])));
    let hits = best(&items, &exact, &first, opts.top)
        .into_iter()
        .enumerate()
        .map(|(rank, (image, score, first_stage))| Hit {
            rank: rank + 1,
            image,
            image_id: index.header.image_ids[image],
            caption: None,
            score,
            first_stage,
        })
        .collect();
    Ok(Answer {
        hits,
        unknown_words: unknown,
        pairs: items.len(),
        encode_seconds,
        first_stage_seconds,
        rerank_seconds: started.elapsed().as_secs_f64(),
    })
}

fn by_image(
    index: &Index,
    model: &Matcher,
    id: u64,
    opts: SearchOptions,
    device: &Device,
) -> Result<Answer, QueryError> {
    let h = &index.header;
    let image = h
        .image_ids
        .iter()
        .position(|&i| i == id)
        .ok_or(QueryError::NoSuchImage(id))?;
    let started = Instant::now();
    let regions: Tensor<3> = index.rows(IMAGES, Some(&[image]), device);
    let m = h.lengths.len();
    // Scores per encoded caption row, as the index stores the captions.
    let first = floats(match opts.stage {
        FirstStage::Global => {
            let query: Tensor<2> = index.rows(IMAGE_VECTORS, Some(&[image]), device);
            let gallery: Tensor<2> = index.rows(CAPTION_VECTORS, None, device);
            query.matmul(gallery.transpose())
        }
        FirstStage::MaxSim => {
            let captions = index.rows(CAPTIONS, None, device);
            let (words, regions) = maxsim(regions.clone(), &captions, &h.lengths, 0..m);
            words + regions
        }
    });
    let rows = shortlist(&first, opts);
    let first_stage_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let captions: Tensor<3> = index.rows(CAPTIONS, Some(&rows), device);
    let lengths: Vec<usize> = rows.iter().map(|&r| h.lengths[r]).collect();
    let globals = index
        .optional_rows(IMAGE_GLOBALS, Some(&[image]), device)
        .zip(index.optional_rows(CAPTION_GLOBALS, Some(&rows), device))
        .map(|(images, captions)| Globals { images, captions });
    let all: Vec<usize> = (0..rows.len()).collect();
    let exact = floats(model.selection(
        &regions,
        &captions,
        &lengths,
        globals.as_ref(),
        (&[0], &all),
    ));
    let hits = best(&rows, &exact, &first, opts.top)
        .into_iter()
        .enumerate()
        .map(|(rank, (row, score, first_stage))| {
            let caption = h.caption_rows[row];
            let image = caption / rcar_data::split::CAPTIONS_PER_IMAGE;
            Hit {
                rank: rank + 1,
                image,
                image_id: h.image_ids[image],
                caption: Some(caption),
                score,
                first_stage,
            }
        })
        .collect();
    Ok(Answer {
        hits,
        unknown_words: Vec::new(),
        pairs: rows.len(),
        encode_seconds: 0.0,
        first_stage_seconds,
        rerank_seconds: started.elapsed().as_secs_f64(),
    })
}
