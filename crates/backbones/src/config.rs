//! The model configuration: host, dimensions, attention direction, regulator mode and step count.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// Which modality queries the other in the cross attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Words attend over regions (`--attn_type t2i`).
    T2i,
    /// Regions attend over words (`--attn_type i2t`).
    I2t,
}

impl Direction {
    /// Query and context tokens of a pair, for `regions` image regions and `words` caption tokens.
    pub fn query_and_context(self, regions: usize, words: usize) -> (usize, usize) {
        match self {
            Self::T2i => (words, regions),
            Self::I2t => (regions, words),
        }
    }
}

/// The backbone whose cross attention and aggregation score a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    /// RCAR's released SCAN-style host (`SCANpp`), t2i or i2t.
    Scan,
    /// SGRAF's similarity attention filtration (t2i).
    Saf,
    /// SGRAF's similarity graph reasoning (t2i).
    Sgr,
}

/// How the regulators are combined (`--self_regulator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `only_rcr`: N RCR steps, mean-cosine head. N = 0 is the baseline.
    OnlyRcr,
    /// `only_rar`: one alignment pass, N RAR steps, sigmoid head.
    OnlyRar,
    /// `coop_rcar`: N passes, N−1 RCRs between them, N RARs, sigmoid head.
    CoopRcar,
}

/// What seeds RAR's holistic vector in SAF and SGR (`../shared/docs/plugin-backbones.md` §3.3;
/// the paper leaves it open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RarInit {
    /// The host's own aggregation: SAF's filtered vector, SGR's reasoned global node.
    Host,
    /// The mean of the nodes RAR attends over, as the SCAN host seeds it.
    Mean,
}

/// Which alignment nodes RAR attends over in SAF and SGR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RarNodes {
    /// The global node and every word's.
    All,
    /// The words' nodes only.
    LocalOnly,
}

/// Whether RAR in SGR attends over the nodes after graph reasoning or before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RarOn {
    Reasoned,
    Raw,
}

/// Which alignment layers RCR's extra attention passes use in SAF and SGR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcrAlignment {
    /// Each pass its own alignment-vector module (`alv_modules`), as RCAR's released host.
    Own,
    /// Every pass the host's `sim_tranloc_w` ("variant B": no new alignment modules).
    Shared,
}

#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Vocabulary size: `<mask>` included for the SCAN host (RCAR's vocabulary), not for SAF and
    /// SGR (SGRAF's has none).
    pub vocab_size: usize,
    pub direction: Direction,
    pub mode: Mode,
    /// `rcr_step`, `rar_step` or `rcar_step`, by mode.
    pub steps: usize,
    #[config(default = 2048)]
    pub img_dim: usize,
    #[config(default = 300)]
    pub word_dim: usize,
    #[config(default = 1024)]
    pub embed_size: usize,
    #[config(default = 256)]
    pub sim_dim: usize,
    /// Initial softmax temperature λ₀ for t2i.
    #[config(default = 10.0)]
    pub t2i_smooth: f64,
    /// Initial softmax temperature λ₀ for i2t.
    #[config(default = 3.0)]
    pub i2t_smooth: f64,
    /// Dropout on word embeddings and inside RAR (and SGRAF's VisualSA and TextSA).
    #[config(default = 0.4)]
    pub dropout: f64,
    #[config(default = "Host::Scan")]
    pub host: Host,
    /// Region slots per image: SAF's and SGR's VisualSA holds a BatchNorm over them.
    #[config(default = 36)]
    pub regions: usize,
    /// SGR's graph-reasoning steps (`sgr_step`).
    #[config(default = 3)]
    pub sgr_step: usize,
    /// SAF and SGR with RAR: its seed.
    #[config(default = "RarInit::Host")]
    pub rar_init: RarInit,
    /// SAF and SGR with RAR: the nodes it attends over.
    #[config(default = "RarNodes::All")]
    pub rar_nodes: RarNodes,
    /// SGR with RAR: reasoned or raw nodes.
    #[config(default = "RarOn::Reasoned")]
    pub rar_on: RarOn,
    /// SAF and SGR with RCR: the alignment layers of its extra passes.
    #[config(default = "RcrAlignment::Own")]
    pub rcr_alignment: RcrAlignment,
}

/// Fields added after the first checkpoints and experiment files were written: read with their
/// defaults where absent (Burn's `Config` derive gives serde no defaults).
const LATER_FIELDS: [&str; 7] = [
    "host",
    "regions",
    "sgr_step",
    "rar_init",
    "rar_nodes",
    "rar_on",
    "rcr_alignment",
];

/// Reads a model configuration, taking the defaults of [`LATER_FIELDS`] where they are absent, so
/// that configurations saved before them still load (`#[serde(deserialize_with = …)]`).
pub fn deserialize_config<'de, D>(deserializer: D) -> Result<ModelConfig, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let mut value = serde_json::Value::deserialize(deserializer)?;
    if let Some(fields) = value.as_object_mut() {
        let defaults = serde_json::to_value(ModelConfig::new(0, Direction::T2i, Mode::OnlyRcr, 0))
            .map_err(D::Error::custom)?;
        for key in LATER_FIELDS {
            if !fields.contains_key(key) {
                fields.insert(key.into(), defaults[key].clone());
            }
        }
    }
    serde_json::from_value(value).map_err(D::Error::custom)
}

impl ModelConfig {
    /// A generous count of the float32 intermediates one pair holds at a time, for `q` query and
    /// `c` context tokens: what sizes the blocks of the pair grid to a memory budget.
    pub fn floats_per_pair(&self, q: usize, c: usize) -> usize {
        let (e, s) = (self.embed_size, self.sim_dim);
        match self.host {
            Host::Scan => 4 * q * c + 8 * q * e + 6 * q * s + c * e,
            // SGR's node graph is (q + 1)² per step; SAF's nodes are q + 1 vectors.
            Host::Saf | Host::Sgr => {
                4 * q * c + 6 * q * e + 8 * (q + 1) * s + 4 * (q + 1) * (q + 1) + c * e
            }
        }
    }

    /// λ₀ of the configured direction.
    pub fn smooth(&self) -> f64 {
        match self.direction {
            Direction::T2i => self.t2i_smooth,
            Direction::I2t => self.i2t_smooth,
        }
    }

    /// Numbers of (alignment-vector, RCR, RAR) modules the mode builds: on the SCAN host, every
    /// pass's alignment vectors; on SAF and SGR, those beyond the host's own (`sim_tranloc_w`
    /// serves the last +RCR pass and the first +RCAR one, or every pass with `rcr_alignment`
    /// shared).
    pub fn module_counts(&self) -> (usize, usize, usize) {
        let n = self.steps;
        let (alignments, rcrs, rars) = match self.mode {
            Mode::OnlyRcr => (n, n, 0),
            Mode::OnlyRar => (1, 0, n),
            Mode::CoopRcar => (n, n.saturating_sub(1), n),
        };
        let alignments = match (self.host, self.mode, self.rcr_alignment) {
            (Host::Scan, _, _) => alignments,
            (_, _, RcrAlignment::Shared) | (_, Mode::OnlyRar, _) => 0,
            (_, Mode::OnlyRcr, _) => n,
            (_, Mode::CoopRcar, _) => n.saturating_sub(1),
        };
        (alignments, rcrs, rars)
    }

    /// Refuses a vocabulary file of another size than the model's: its word ids would mean other
    /// words. `vocab_len` counts the `<mask>` that loading appends, which SGRAF's hosts lack.
    /// `source` names where the configuration came from (a checkpoint, an experiment).
    pub fn check_vocab(
        &self,
        vocab_len: usize,
        vocab_path: &std::path::Path,
        source: &str,
    ) -> Result<(), rcar_data::DataError> {
        let (words, counted) = match self.host {
            Host::Scan => (vocab_len, "<mask> included"),
            Host::Saf | Host::Sgr => (vocab_len - 1, "SGRAF has no <mask>"),
        };
        if self.vocab_size == words {
            return Ok(());
        }
        Err(rcar_data::DataError::invalid(
            vocab_path,
            format!(
                "{words} words ({counted}), but {source} has vocab_size {}",
                self.vocab_size
            ),
        ))
    }

    /// Refuses region features the model cannot read: another feature width, or (SAF and SGR,
    /// whose VisualSA normalises each region slot) another number of regions. `path`: the
    /// features file.
    pub fn check_features(
        &self,
        regions: usize,
        dim: usize,
        path: &std::path::Path,
    ) -> Result<(), rcar_data::DataError> {
        let problem = if dim != self.img_dim {
            format!(
                "regions of {dim} features, but the model reads img_dim {}",
                self.img_dim
            )
        } else if self.host != Host::Scan && regions != self.regions {
            format!(
                "{regions} regions per image, but the {:?} host's VisualSA normalises {} region slots",
                self.host, self.regions
            )
        } else {
            return Ok(());
        };
        Err(rcar_data::DataError::invalid(path, problem))
    }

    /// What cannot be built: a RAR mode without steps on the SCAN host (whose plain aggregation
    /// is `only_rcr`'s cosine head; on SAF and SGR, N = 0 in any mode is the host); SGRAF's hosts
    /// other than t2i at λ₀ = 9.
    pub fn problem(&self) -> Option<&'static str> {
        match self.host {
            Host::Scan => (self.steps == 0 && self.mode != Mode::OnlyRcr)
                .then_some("only_rar and coop_rcar need at least one step"),
            _ if self.direction != Direction::T2i => {
                Some("SAF and SGR are t2i hosts (SGRAF): set direction to t2i")
            }
            _ if self.t2i_smooth != crate::sgraf::SMOOTH => {
                Some("SAF and SGR attend with SGRAF's hard-coded temperature: set t2i_smooth to 9")
            }
            _ => None,
        }
    }

    /// Whether scores come from the sigmoid head (RAR modes, and every SAF and SGR model) rather
    /// than the mean cosine.
    pub fn sigmoid_head(&self) -> bool {
        self.mode != Mode::OnlyRcr || self.host != Host::Scan
    }
}
