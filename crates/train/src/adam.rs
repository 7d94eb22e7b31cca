//! Adam and AdamW as Burn computes them, in one pass over each parameter on the CPU backend.
//!
//! Burn's `Adam` and `AdamW` are a dozen tensor ops per parameter, each a pass that allocates its
//! result: over RCAR's 15 M parameters about a tenth of a batch-32 training step on the CPU. On the
//! CPU backend the same float32 operations, in the same order (so the same values, bit for bit), run
//! in one loop over each parameter's value, gradient and moments, in place. The states are Burn's
//! (`AdamWState`, `AdamState`), so a checkpoint's optimizer record is the same whichever path wrote
//! it; any other tensor (a GPU's) takes Burn's optimizer.

#[cfg(feature = "flex")]
use burn::optim::AdaptiveMomentumState;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, LearningRate, Optimizer,
};
use burn::tensor::{Device, Tensor};

/// RCAR's optimizer ([`crate::optimizer`]): Burn's `AdamW` (decoupled weight decay, without
/// AMSGrad or cautious decay), fused on the CPU backend.
#[derive(Clone)]
pub struct FusedAdamW {
    burn: AdamW,
    #[cfg(feature = "flex")]
    rule: cpu::Rule,
}

/// SGRAF's optimizer: Burn's `Adam` without weight decay or AMSGrad, fused on the CPU backend.
#[derive(Clone)]
pub struct FusedAdam {
    burn: Adam,
    #[cfg(feature = "flex")]
    rule: cpu::Rule,
}

impl FusedAdamW {
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        Self {
            burn: AdamWConfig::new()
                .with_beta_1(beta_1)
                .with_beta_2(beta_2)
                .with_epsilon(epsilon)
                .with_weight_decay(weight_decay)
                .build(),
            #[cfg(feature = "flex")]
            rule: cpu::Rule::new(beta_1, beta_2, epsilon, Some(weight_decay)),
        }
    }
}

impl FusedAdam {
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32) -> Self {
        let config = AdamConfig::new().with_beta_1(beta_1).with_beta_2(beta_2);
        Self {
            burn: config.with_epsilon(epsilon).build(),
            #[cfg(feature = "flex")]
            rule: cpu::Rule::new(beta_1, beta_2, epsilon, None),
        }
    }
}

/// `Optimizer` for `$fused`, a wrapper of Burn's `$burn` whose state is `$state`: the fused step
/// where it applies, Burn's otherwise.
macro_rules! fused_optimizer {
    ($fused:ty, $burn:ty, $state:ident) => {
        impl Optimizer for $fused {
            type State<const D: usize> = $state<D>;

            fn step<const D: usize>(
                &self,
                lr: LearningRate,
                tensor: Tensor<D>,
                grad: Tensor<D>,
                state: Option<Self::State<D>>,
            ) -> (Tensor<D>, Option<Self::State<D>>) {
                #[cfg(feature = "flex")]
                let (tensor, grad, state) =
                    match cpu::step(self.rule, lr, tensor, grad, state.map(|s| s.momentum)) {
                        Ok((tensor, m)) => return (tensor, Some($state::new(m))),
                        Err(back) => back.map_state($state::new),
                    };
                self.burn.step(lr, tensor, grad, state)
            }

            fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
                <$burn>::to_device(state, device)
            }
        }
    };
}

fused_optimizer!(FusedAdamW, AdamW, AdamWState);
fused_optimizer!(FusedAdam, Adam, AdamState);

/// What an optimizer hands back when it cannot fuse a step: its inputs, for Burn's.
#[cfg(feature = "flex")]
struct GivenBack<const D: usize> {
    tensor: Tensor<D>,
    grad: Tensor<D>,
    momentum: Option<AdaptiveMomentumState<D>>,
}

#[cfg(feature = "flex")]
impl<const D: usize> GivenBack<D> {
    fn map_state<S>(
        self,
        state: impl FnOnce(AdaptiveMomentumState<D>) -> S,
    ) -> (Tensor<D>, Tensor<D>, Option<S>) {
        (self.tensor, self.grad, self.momentum.map(state))
    }
}

#[cfg(feature = "flex")]
mod cpu {
    use super::GivenBack;
    use burn::backend::flex::FlexTensor;
    use burn::backend::Flex;
    use burn::optim::AdaptiveMomentumState;
    use burn::tensor::{Tensor, TensorData};
    use rcar_regulators::cpu::{plain, values, vectorised};

    /// The constants of an update, as Burn's optimizers hold them.
    #[derive(Clone, Copy, Debug)]
    pub struct Rule {
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        /// AdamW's weight decay λ; `None` for Adam (without weight decay).
        decoupled_decay: Option<f32>,
    }

    impl Rule {
        pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, decoupled_decay: Option<f32>) -> Self {
            Self {
                beta_1,
                beta_2,
                epsilon,
                decoupled_decay,
            }
        }
    }

    /// The update, in place, where the parameter, its gradient and its moments are float32 CPU
    /// tensors; the inputs given back otherwise (or with AMSGrad's extra moment, which these
    /// optimizers never make).
    pub fn step<const D: usize>(
        rule: Rule,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        momentum: Option<AdaptiveMomentumState<D>>,
    ) -> Result<(Tensor<D>, AdaptiveMomentumState<D>), Box<GivenBack<D>>> {
        let n = tensor.shape().num_elements();
        // `plain`: a float32 tensor of the CPU backend without a graph.
        let cpu = |t: &Tensor<D>| t.shape().num_elements() == n && plain(t).is_some();
        let fits = cpu(&tensor)
            && cpu(&grad)
            && momentum
                .as_ref()
                .is_none_or(|m| m.max_moment_2.is_none() && cpu(&m.moment_1) && cpu(&m.moment_2));
        if !fits {
            return Err(Box::new(GivenBack {
                tensor,
                grad,
                momentum,
            }));
        }
        let (first, time, m1, m2) = match momentum {
            None => {
                let zeros = || Tensor::<D>::zeros(tensor.shape(), &tensor.device());
                (true, 1, zeros(), zeros())
            }
            Some(m) => (false, m.time + 1, m.moment_1, m.moment_2),
        };
        let g = plain(&grad).expect("checked above");
        let g = values(&g);
        let [mut theta, mut m1, mut m2] = [tensor, m1, m2].map(owned);
        let (t, a, b) = (slice(&mut theta, n), slice(&mut m1, n), slice(&mut m2, n));
        let update = Update::new(rule, lr, time, first);
        vectorised(
            #[inline(always)]
            || update.apply(t, a, b, &g[..n]),
        );
        let [theta, m1, m2] = [theta, m1, m2].map(Tensor::<D>::from_primitive::<Flex>);
        Ok((theta, AdaptiveMomentumState::new(time, m1, m2)))
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

    /// One update's scalars, each computed in float32 where Burn computes it so.
    struct Update {
        rule: Rule,
        /// The first step: no moments yet.
        first: bool,
        factor_1: f32,
        factor_2: f32,
        lr: f32,
        step: Step,
    }

    /// How the moments become the step, by optimizer.
    enum Step {
        /// AdamW: (m / c₁) / (√(v / c₂) + ε), the parameter first scaled by 1 − lr·λ where that
        /// is not 1.
        Decoupled {
            correction_1: f32,
            correction_2: f32,
            keep: Option<f32>,
        },
        /// Adam: m·(√c₂ / c₁) / (√v + ε·√c₂).
        Combined { factor: f32, epsilon: f32 },
    }

    impl Update {
        fn new(rule: Rule, lr: f64, time: usize, first: bool) -> Self {
            let time = time as i32;
            let step = match rule.decoupled_decay {
                Some(decay) => {
                    let rate = lr * decay as f64;
                    Step::Decoupled {
                        correction_1: 1f32 - rule.beta_1.powi(time),
                        correction_2: 1f32 - rule.beta_2.powi(time),
                        keep: (rate != 0.0).then_some((1.0 - rate) as f32),
                    }
                }
                None => {
                    let correction_2_sqrt = (1.0 - rule.beta_2.powi(time)).sqrt();
                    Step::Combined {
                        factor: correction_2_sqrt / (1.0 - rule.beta_1.powi(time)),
                        epsilon: rule.epsilon * correction_2_sqrt,
                    }
                }
            };
            Self {
                rule,
                first,
                factor_1: 1.0 - rule.beta_1,
                factor_2: 1.0 - rule.beta_2,
                lr: lr as f32,
                step,
            }
        }

        /// Burn's `step` and its moments' `transform`, element by element: each float32
        /// operation of theirs, in their order.
        #[inline(always)]
        fn apply(&self, theta: &mut [f32], m1: &mut [f32], m2: &mut [f32], g: &[f32]) {
            let n = g.len();
            let (theta, m1, m2) = (&mut theta[..n], &mut m1[..n], &mut m2[..n]);
            let (beta_1, beta_2) = (self.rule.beta_1, self.rule.beta_2);
            let moments = |m1: &mut f32, m2: &mut f32, g: f32| {
                if self.first {
                    *m1 = g * self.factor_1;
                    *m2 = (g * g) * self.factor_2;
                } else {
                    *m1 = *m1 * beta_1 + g * self.factor_1;
                    *m2 = *m2 * beta_2 + (g * g) * self.factor_2;
                }
            };
            match self.step {
                Step::Decoupled {
                    correction_1,
                    correction_2,
                    keep,
                } => {
                    for i in 0..n {
                        moments(&mut m1[i], &mut m2[i], g[i]);
                        let v = (m2[i] / correction_2).sqrt() + self.rule.epsilon;
                        let delta = (m1[i] / correction_1) / v;
                        let decayed = match keep {
                            Some(keep) => theta[i] * keep,
                            None => theta[i],
                        };
                        theta[i] = decayed - delta * self.lr;
                    }
                }
                Step::Combined { factor, epsilon } => {
                    for i in 0..n {
                        moments(&mut m1[i], &mut m2[i], g[i]);
                        let delta = (m1[i] * factor) / (m2[i].sqrt() + epsilon);
                        theta[i] -= delta * self.lr;
                    }
                }
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
            panic!("{what}: value {i} is {} fused, {} in Burn's", a[i], b[i]);
        }
    }

    /// Six steps of the fused optimizer and of Burn's on the same parameter and gradients (zeros, a
    /// negative zero and values far apart included): the fused path taken, the same bits each step.
    fn same_as_burns<F: Optimizer, B: Optimizer<State<2> = F::State<2>>>(
        (fused, rule): (&F, cpu::Rule),
        burn: &B,
        lr: f64,
        momentum: impl Fn(&F::State<2>) -> &AdaptiveMomentumState<2>,
    ) {
        let device = Device::flex();
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
            let m = sa.as_ref().map(|s| momentum(s).clone());
            let fusable = cpu::step(rule, lr, a.clone(), g.clone(), m).is_ok();
            assert!(fusable, "CPU tensors take the fused path");
            (a, sa) = fused.step(lr, a, g.clone(), sa);
            (b, sb) = burn.step(lr, b, g, sb);
            assert_same(&a, &b, &format!("parameter, step {step}"));
            let (ma, mb) = (
                momentum(sa.as_ref().unwrap()),
                momentum(sb.as_ref().unwrap()),
            );
            assert_eq!(ma.time, mb.time);
            assert_same(&ma.moment_1, &mb.moment_1, &format!("m, step {step}"));
            assert_same(&ma.moment_2, &mb.moment_2, &format!("v, step {step}"));
        }
    }

    #[test]
    fn the_fused_adamw_is_burns_bit_for_bit() {
        for (weight_decay, lr) in [(0.01, 5e-4), (0.0, 2e-4), (0.5, 1e-1)] {
            let fused = FusedAdamW::new(0.9, 0.999, 1e-8, weight_decay);
            // Burn's defaults are β₁ = 0.9 and β₂ = 0.999.
            let config = AdamWConfig::new().with_weight_decay(weight_decay);
            let burn = config.with_epsilon(1e-8).build();
            same_as_burns((&fused, fused.rule), &burn, lr, |s: &AdamWState<2>| {
                &s.momentum
            });
        }
    }

    #[test]
    fn the_fused_adam_is_burns_bit_for_bit() {
        for lr in [2e-4, 1e-1] {
            let fused = FusedAdam::new(0.9, 0.999, 1e-8);
            let burn = AdamConfig::new().with_epsilon(1e-8).build();
            same_as_burns((&fused, fused.rule), &burn, lr, |s: &AdamState<2>| {
                &s.momentum
            });
        }
    }
}
