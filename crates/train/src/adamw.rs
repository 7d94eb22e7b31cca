//! AdamW as Burn's `AdamW` computes it, in one pass over each parameter on the CPU backend.
//!
//! Burn's `AdamW` is a dozen tensor ops per parameter, each a pass that allocates its result: over
//! RCAR's 15 M parameters about a tenth of a batch-32 training step on the CPU. On the CPU backend
//! the same float32 operations, in the same order (so the same values, bit for bit), run in one
//! loop over each parameter's value, gradient and moments. The state is Burn's `AdamWState`, so a
//! checkpoint's optimizer record is the same whichever path wrote it; any other tensor (a GPU's)
//! takes Burn's `AdamW`.

use burn::optim::{AdamW, AdamWConfig, AdamWState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

/// RCAR's optimizer ([`crate::optimizer`]): Burn's `AdamW` (without AMSGrad or cautious decay),
/// fused on the CPU backend.
#[derive(Clone)]
pub struct FusedAdamW {
    burn: AdamW,
    #[cfg(feature = "flex")]
    hyper: Hyper,
}

/// The constants of one update, as Burn's `AdamW` holds them.
#[cfg(feature = "flex")]
#[derive(Clone, Copy, Debug)]
struct Hyper {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
}

impl FusedAdamW {
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        let burn = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            burn,
            #[cfg(feature = "flex")]
            hyper: Hyper {
                beta_1,
                beta_2,
                epsilon,
                weight_decay,
            },
        }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        #[cfg(feature = "flex")]
        let (tensor, grad, state) = match cpu::step(self.hyper, lr, tensor, grad, state) {
            Ok(done) => return done,
            Err(given_back) => *given_back,
        };
        self.burn.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamW::to_device(state, device)
    }
}

#[cfg(feature = "flex")]
mod cpu {
    use super::Hyper;
    use burn::backend::flex::FlexTensor;
    use burn::backend::Flex;
    use burn::optim::{AdamWState, AdaptiveMomentumState};
    use burn::tensor::{DType, Tensor, TensorData};
    use rcar_regulators::cpu::{plain, values, vectorised};

    type Step<const D: usize> = (Tensor<D>, Option<AdamWState<D>>);
    type Inputs<const D: usize> = (Tensor<D>, Tensor<D>, Option<AdamWState<D>>);

    /// The update, in place, where the parameter, its gradient and its moments are float32 CPU
    /// tensors; the inputs given back otherwise (or with AMSGrad's extra moment, which this
    /// optimizer never makes).
    pub fn step<const D: usize>(
        h: Hyper,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> Result<Step<D>, Box<Inputs<D>>> {
        let n = tensor.shape().num_elements();
        let cpu = |t: &Tensor<D>| t.dtype() == DType::F32 && plain(t).is_some();
        let fits = cpu(&tensor)
            && cpu(&grad)
            && grad.shape().num_elements() == n
            && state.as_ref().is_none_or(|s| {
                let m = &s.momentum;
                m.max_moment_2.is_none()
                    && [&m.moment_1, &m.moment_2]
                        .iter()
                        .all(|t| cpu(t) && t.shape().num_elements() == n)
            });
        if !fits {
            return Err(Box::new((tensor, grad, state)));
        }
        let shape = tensor.shape();
        let (first, time, m1, m2) = match state {
            None => {
                let zeros = || Tensor::<D>::zeros(shape.clone(), &tensor.device());
                (true, 1, zeros(), zeros())
            }
            Some(s) => (
                false,
                s.momentum.time + 1,
                s.momentum.moment_1,
                s.momentum.moment_2,
            ),
        };
        let g = plain(&grad).expect("checked above");
        let g = values(&g);
        let [mut theta, mut m1, mut m2] = [tensor, m1, m2].map(owned);
        let (t, a, b) = (slice(&mut theta, n), slice(&mut m1, n), slice(&mut m2, n));
        let update = Update::new(h, lr, time, first);
        vectorised(
            #[inline(always)]
            || update.apply(t, a, b, &g[..n]),
        );
        let [theta, m1, m2] = [theta, m1, m2].map(Tensor::<D>::from_primitive::<Flex>);
        let momentum = AdaptiveMomentumState::new(time, m1, m2);
        Ok((theta, Some(AdamWState::new(momentum))))
    }

    /// A CPU tensor that holds its values alone and contiguously: itself if it does (the usual
    /// case: the optimizer is handed the parameter and the moments), a copy otherwise.
    fn owned<const D: usize>(t: Tensor<D>) -> FlexTensor {
        let Ok(t) = t.try_into_primitive::<Flex>() else {
            unreachable!("checked: a CPU tensor")
        };
        let layout = t.layout();
        if t.is_unique() && layout.is_contiguous() && layout.start_offset() == 0 {
            return t;
        }
        let shape = layout.shape().clone();
        let copy = t.into_data().try_into_vec::<f32>().expect("float32 values");
        FlexTensor::from_data(TensorData::new(copy, shape))
    }

    fn slice(t: &mut FlexTensor, n: usize) -> &mut [f32] {
        &mut t.try_storage_mut::<f32>().expect("an owned float32 tensor")[..n]
    }

    /// One update's scalars, each rounded to float32 where the CPU backend rounds it.
    struct Update {
        h: Hyper,
        /// The first step: no moments yet.
        first: bool,
        factor_1: f32,
        factor_2: f32,
        correction_1: f32,
        correction_2: f32,
        /// 1 − lr·λ, the decoupled weight decay's factor, where lr·λ ≠ 0.
        keep: Option<f32>,
        lr: f32,
    }

    impl Update {
        fn new(h: Hyper, lr: f64, time: usize, first: bool) -> Self {
            let decay_rate = lr * h.weight_decay as f64;
            Self {
                h,
                first,
                factor_1: 1.0 - h.beta_1,
                factor_2: 1.0 - h.beta_2,
                correction_1: 1f32 - h.beta_1.powi(time as i32),
                correction_2: 1f32 - h.beta_2.powi(time as i32),
                keep: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
                lr: lr as f32,
            }
        }

        /// Burn's `AdamW::step` and `AdaptiveMomentumW::transform`, element by element: each
        /// float32 operation of theirs, in their order.
        #[inline(always)]
        fn apply(&self, theta: &mut [f32], m1: &mut [f32], m2: &mut [f32], g: &[f32]) {
            let (h, n) = (self.h, g.len());
            let (theta, m1, m2) = (&mut theta[..n], &mut m1[..n], &mut m2[..n]);
            for i in 0..n {
                let gi = g[i];
                if self.first {
                    m1[i] = gi * self.factor_1;
                    m2[i] = (gi * gi) * self.factor_2;
                } else {
                    m1[i] = m1[i] * h.beta_1 + gi * self.factor_1;
                    m2[i] = m2[i] * h.beta_2 + (gi * gi) * self.factor_2;
                }
                let v = (m2[i] / self.correction_2).sqrt() + h.epsilon;
                let delta = (m1[i] / self.correction_1) / v;
                let decayed = match self.keep {
                    Some(keep) => theta[i] * keep,
                    None => theta[i],
                };
                theta[i] = decayed - delta * self.lr;
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    /// Fails unless `a` and `b` hold the same float32 bits, naming the first value that differs.
    fn assert_same(a: &Tensor<2>, b: &Tensor<2>, what: &str) {
        let values = |t: &Tensor<2>| t.to_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (values(a), values(b));
        let differ = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x.to_bits() != y.to_bits());
        if let Some(i) = differ {
            panic!(
                "{what}: value {i} is {} here, {} in Burn's AdamW",
                a[i], b[i]
            );
        }
    }

    /// Six steps of each optimizer on the same parameter and gradients (zeros, a negative zero and
    /// values far apart included), with and without weight decay and at two learning rates.
    #[test]
    fn the_fused_step_is_burns_adamw_bit_for_bit() {
        let device = Device::flex();
        for (weight_decay, lr) in [(0.01, 5e-4), (0.0, 2e-4), (0.5, 1e-1)] {
            let fused = FusedAdamW::new(0.9, 0.999, 1e-8, weight_decay);
            let burn = AdamWConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.999)
                .with_epsilon(1e-8)
                .with_weight_decay(weight_decay)
                .build();
            let start = Tensor::<2>::random([37, 19], Distribution::Normal(0.0, 1.0), &device);
            let (mut a, mut b) = (start.clone(), start);
            let (mut sa, mut sb) = (None, None);
            for step in 0..6 {
                let mut g = Tensor::<2>::random([37, 19], Distribution::Normal(0.0, 0.3), &device)
                    .to_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                g[0] = 0.0;
                g[1] = -0.0;
                g[2] = 1e-30 * (step as f32 + 1.0);
                g[3] = 1e4;
                let g = Tensor::<2>::from_data(TensorData::new(g, [37, 19]), &device);
                let taken = cpu::step(fused.hyper, lr, a.clone(), g.clone(), sa.clone());
                assert!(taken.is_ok(), "CPU tensors take the fused path");
                (a, sa) = fused.step(lr, a, g.clone(), sa);
                (b, sb) = burn.step(lr, b, g, sb);
                assert_same(&a, &b, &format!("parameter, step {step}"));
                let (ma, mb) = (
                    &sa.as_ref().unwrap().momentum,
                    &sb.as_ref().unwrap().momentum,
                );
                assert_eq!(ma.time, mb.time);
                assert_same(&ma.moment_1, &mb.moment_1, &format!("m, step {step}"));
                assert_same(&ma.moment_2, &mb.moment_2, &format!("v, step {step}"));
            }
        }
    }
}
