//! One split of a dataset directory in the SCAN layout: `{name}_ims.npy`, `{name}_caps.txt`
//! (`{name}_ids.txt` is not needed to train or evaluate).

use crate::captions::read_captions;
use crate::error::{DataError, Result};
use crate::npy::Features;
use crate::vocab::Vocab;
use std::path::{Path, PathBuf};

/// Captions per image, everywhere in both datasets and in the evaluation protocol.
pub const CAPTIONS_PER_IMAGE: usize = 5;
/// The protocol evaluates on the first 5,000 dev captions only (both datasets).
pub const DEV_CAPTIONS: usize = 5000;

/// Region features plus encoded captions. Caption `k` belongs to feature row `k / im_div`.
#[derive(Debug)]
pub struct Split {
    pub name: String,
    pub features: Features,
    /// Where the captions came from, for error messages.
    pub caps_path: PathBuf,
    /// The raw captions, trimmed.
    pub captions: Vec<String>,
    /// `<start>` + token ids + `<end>` for each caption.
    pub tokens: Vec<Vec<u32>>,
    /// 1 when the features are stored once per caption (Flickr30K), 5 when once per image (MSCOCO).
    pub im_div: usize,
    /// Model vocabulary size, `<mask>` included (augmentation draws random ids below it).
    pub vocab_size: usize,
}

/// The paths of a split's files.
pub fn split_files(dir: &Path, name: &str) -> [PathBuf; 3] {
    ["ims.npy", "caps.txt", "ids.txt"].map(|suffix| dir.join(format!("{name}_{suffix}")))
}

impl Split {
    /// Opens `dir/{name}_*`, tokenises every caption and checks that captions and feature rows agree.
    pub fn open(dir: &Path, name: &str, vocab: &Vocab) -> Result<Self> {
        let [ims, caps, _] = split_files(dir, name);
        let features = Features::open(&ims)?;
        let mut captions = read_captions(&caps)?;
        let im_div = im_div(&caps, captions.len(), features.rows())?;
        if name == "dev" {
            captions.truncate(DEV_CAPTIONS);
        }
        let tokens = captions.iter().map(|c| vocab.encode(c)).collect();
        Ok(Self {
            name: name.to_string(),
            features,
            caps_path: caps,
            captions,
            tokens,
            im_div,
            vocab_size: vocab.len(),
        })
    }

    /// Number of captions, the dataset's items.
    pub fn len(&self) -> usize {
        self.captions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.captions.is_empty()
    }

    /// The feature row of caption `k`.
    pub fn image_row(&self, caption: usize) -> usize {
        caption / self.im_div
    }

    /// Number of distinct images for evaluation (five captions each).
    pub fn num_images(&self) -> usize {
        self.len() / CAPTIONS_PER_IMAGE
    }

    /// The feature row of evaluation image `i` (the image of captions 5i…5i+4).
    pub fn eval_image_row(&self, image: usize) -> usize {
        self.image_row(image * CAPTIONS_PER_IMAGE)
    }

    /// Checks the evaluation protocol's assumption: exactly five consecutive captions per image.
    pub fn check_eval(&self) -> Result<()> {
        if !self.len().is_multiple_of(CAPTIONS_PER_IMAGE) {
            return Err(DataError::invalid(
                &self.caps_path,
                format!(
                    "{} captions is not a multiple of {CAPTIONS_PER_IMAGE}: evaluation needs five captions per image",
                    self.len()
                ),
            ));
        }
        Ok(())
    }
}

/// The official rule: one feature row per caption, or one per five captions; anything else is an error.
pub fn im_div(caps: &Path, captions: usize, rows: usize) -> Result<usize> {
    if rows == captions {
        Ok(1)
    } else if rows * CAPTIONS_PER_IMAGE == captions {
        Ok(CAPTIONS_PER_IMAGE)
    } else {
        Err(DataError::invalid(
            caps,
            format!(
                "{captions} captions for {rows} feature rows: expected one caption per row or five per row"
            ),
        ))
    }
}
