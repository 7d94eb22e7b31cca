//! Terminal progress bars (indicatif) for the library's `Progress` reports.

use indicatif::{ProgressBar, ProgressStyle};
use rcar_eval::Progress;

pub struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    pub fn new() -> Self {
        Self { bar: None }
    }
}

impl Progress for Bars {
    fn start(&mut self, phase: &str, total: u64) {
        let style = ProgressStyle::with_template(
            "{prefix:>16} [{bar:30}] {pos}/{len} {per_sec:>12} eta {eta:>4} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        let bar = ProgressBar::new(total).with_style(style);
        bar.set_prefix(phase.to_string());
        self.bar = Some(bar);
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn status(&mut self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }

    fn line(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }
}
