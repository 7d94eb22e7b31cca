//! The fused recurrence ([`super::recurrence`]) for the CPU backend's tensors: as it is without a
//! graph, and as one autodiff node with its own backward pass when a graph records it (training),
//! so that Burn's graph holds one GRU node per direction instead of a dozen per step.

use super::recurrence::{backward, forward, Dims, Gates};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use rcar_regulators::cpu::values;
use std::sync::Arc;

/// The recurrence over `x: [B, T, 3H]` with the hidden weight `[H, 3H]` and bias `[3H]` (each row
/// reversed within its length with `reverse`), when all three are float32 tensors of the CPU
/// backend (with or without a graph); `None` otherwise.
pub fn recurrence(
    x: &Tensor<3>,
    weight: &Tensor<2>,
    bias: &Tensor<1>,
    reverse: Option<&[usize]>,
) -> Option<Tensor<3>> {
    if [x.dtype(), weight.dtype(), bias.dtype()]
        .iter()
        .any(|d| *d != DType::F32)
    {
        return None;
    }
    let [batch, steps, h3] = x.dims();
    let dims = Dims {
        batch,
        steps,
        hidden: h3 / 3,
    };
    if let (Ok(x), Ok(w), Ok(b)) = (
        x.clone().try_into_primitive::<Flex>(),
        weight.clone().try_into_primitive::<Flex>(),
        bias.clone().try_into_primitive::<Flex>(),
    ) {
        let (out, _) = forward(dims, &values(&x), &values(&w), &values(&b), reverse, false);
        return Some(Tensor::from_primitive::<Flex>(flex(out, dims.output())));
    }
    if let (Ok(x), Ok(w), Ok(b)) = (
        x.clone().try_into_primitive::<Autodiff<Flex>>(),
        weight.clone().try_into_primitive::<Autodiff<Flex>>(),
        bias.clone().try_into_primitive::<Autodiff<Flex>>(),
    ) {
        let prep = GruStep
            .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful();
        let (xs, ws, bs) = (
            values(x.primitive()),
            values(w.primitive()),
            values(b.primitive()),
        );
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let (out, gates) = forward(dims, &xs, &ws, &bs, reverse, true);
                let out = flex(out, dims.output());
                let state = Saved {
                    dims,
                    out: out.clone(),
                    gates: gates.expect("kept on request"),
                    weight: w.primitive().clone(),
                    reverse: reverse.map(<[usize]>::to_vec),
                };
                prep.finish(Arc::new(state), out)
            }
            OpsKind::UnTracked(prep) => {
                let (out, _) = forward(dims, &xs, &ws, &bs, reverse, false);
                prep.finish(flex(out, dims.output()))
            }
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(out));
    }
    None
}

impl Dims {
    fn output(&self) -> [usize; 3] {
        [self.batch, self.steps, self.hidden]
    }
}

fn flex<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(shape)))
}

/// The graph node of one GRU direction: inputs (projection, hidden weight, hidden bias).
#[derive(Debug)]
struct GruStep;

/// What the forward pass leaves for the backward pass.
#[derive(Debug)]
struct Saved {
    dims: Dims,
    out: FlexTensor,
    gates: Gates,
    weight: FlexTensor,
    reverse: Option<Vec<usize>>,
}

impl Backward<Flex, 3> for GruStep {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let saved = ops.state;
        let dims = saved.dims;
        let g = backward(
            dims,
            &values(&saved.out),
            &saved.gates,
            &values(&saved.weight),
            saved.reverse.as_deref(),
            &values(&grad),
        );
        let h = dims.hidden;
        let [x, weight, bias] = ops.parents;
        if let Some(node) = x {
            grads.register::<Flex>(node.id, flex(g.x, [dims.batch, dims.steps, 3 * h]));
        }
        if let Some(node) = weight {
            grads.register::<Flex>(node.id, flex(g.weight, [h, 3 * h]));
        }
        if let Some(node) = bias {
            grads.register::<Flex>(node.id, flex(g.bias, [3 * h]));
        }
    }
}
