//! Progress reporting for long passes, kept abstract so the library does not choose a terminal UI.

/// Receives the size of each phase and the work done in it.
pub trait Progress {
    /// A phase of `total` units (images, captions, pairs) begins.
    fn start(&mut self, phase: &str, total: u64);
    fn advance(&mut self, done: u64);
    fn finish(&mut self);
    /// The current phase's live status (loss, rate...).
    fn status(&mut self, _text: &str) {}
    /// A line of the run's summary, printed above any bar.
    fn line(&mut self, _text: &str) {}
}

/// Reports nothing (tests, library callers).
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}
