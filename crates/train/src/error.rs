use rcar_data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    /// The loss diverged; the last good checkpoint is left as it was.
    #[error("the loss became {loss} at step {step} (epoch {epoch}); stopped, the last checkpoint is intact")]
    NonFinite { step: u64, epoch: usize, loss: f32 },
}
