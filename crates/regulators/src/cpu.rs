//! Element-wise passes done in place on the CPU backend's tensors, in loops the compiler vectorises.
//!
//! The CPU backend (`flex`) allocates a new tensor for every element-wise op and runs some of them
//! (tanh, sigmoid) one scalar libm call at a time; over the regulators' `[pairs, q, E]` tensors those
//! passes cost as much as the matrix products. A tensor of that backend with no graph (evaluation,
//! the no-graph scoring of the pair-sparse step) is mapped here in place; any other tensor (a GPU's,
//! or one recording a graph) takes the caller's Burn expression, whose derivative Burn knows.

#[cfg(feature = "flex")]
use burn::backend::flex::FlexTensor;
#[cfg(feature = "flex")]
use burn::backend::Flex;
#[cfg(feature = "flex")]
use burn::tensor::{DType, Tensor, TensorData};
#[cfg(feature = "flex")]
use std::borrow::Cow;

/// `t` as a float32 CPU tensor without a graph, to read with [`values`]; `None` for any other.
#[cfg(feature = "flex")]
pub fn plain<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    t.clone().try_into_primitive::<Flex>().ok()
}

/// A CPU tensor's values, borrowed where they are contiguous, copied where they are strided.
#[cfg(feature = "flex")]
pub fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(
            t.clone()
                .into_data()
                .try_into_vec::<f32>()
                .expect("a float32 tensor's data is float32"),
        ),
    }
}

/// `f` over a CPU tensor's values, in place where the tensor owns them (a fresh output, the usual
/// case), on a copy where they are shared or strided; `otherwise(x)` for a tensor that is not a
/// float32 tensor of the CPU backend without a graph.
#[cfg(feature = "flex")]
pub fn map_in_place_or<const D: usize>(
    x: Tensor<D>,
    f: impl FnOnce(&mut [f32]),
    otherwise: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        return otherwise(x);
    }
    // The conversion consumes its tensor even when it fails: probe with a (shallow) clone.
    let Ok(mut t) = x.clone().try_into_primitive::<Flex>() else {
        return otherwise(x);
    };
    let device = x.device();
    drop(x);
    let n = t.layout().num_elements();
    let whole = t.layout().is_contiguous() && t.layout().start_offset() == 0;
    if whole {
        if let Some(values) = t.try_storage_mut::<f32>() {
            f(&mut values[..n]);
            return Tensor::from_primitive::<Flex>(t);
        }
    }
    let shape = t.layout().shape().clone();
    let mut values = Tensor::<D>::from_primitive::<Flex>(t)
        .into_data()
        .try_into_vec::<f32>()
        .expect("a float32 tensor's data is float32");
    f(&mut values);
    Tensor::from_data(TensorData::new(values, shape), &device)
}

/// `f(x values, y values)` writing into x's, as [`map_in_place_or`], where `y` is a contiguous CPU
/// tensor without a graph too whose shape is x's last `D2` dimensions (all of them, or fewer): `f`
/// gets x's values (as many copies of y's size as x holds) and y's once, so that it can repeat y
/// over x without a broadcast copy; `otherwise(x, y)` where either is not such a tensor.
#[cfg(feature = "flex")]
pub fn zip_trailing_in_place_or<const D: usize, const D2: usize>(
    x: Tensor<D>,
    y: Tensor<D2>,
    f: impl FnOnce(&mut [f32], &[f32]),
    otherwise: impl FnOnce(Tensor<D>, Tensor<D2>) -> Tensor<D>,
) -> Tensor<D> {
    if D2 > D || y.dtype() != DType::F32 || x.dims()[D - D2..] != y.dims()[..] {
        return otherwise(x, y);
    }
    let Ok(other) = y.clone().try_into_primitive::<Flex>() else {
        return otherwise(x, y);
    };
    let Some(ys) = other.as_slice::<f32>() else {
        return otherwise(x, y);
    };
    let mut y = Some(y);
    map_in_place_or(
        x,
        |xs| f(xs, ys),
        |x| otherwise(x, y.take().expect("otherwise runs once")),
    )
}

/// Runs `body` compiled for the widest vector unit the CPU has (the loops inside it are vectorised
/// for it); the arithmetic is the same at every width, so are the values.
///
/// Only code inlined into `body` is compiled so: mark the closure `#[inline(always)]` (and the
/// functions it calls), or LLVM may keep a large one apart, compiled for the baseline CPU — a
/// profile then names the closure instead of this function.
#[inline(always)]
pub fn vectorised(body: impl FnOnce()) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { avx512(body) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { avx2(body) };
        }
    }
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(body: impl FnOnce()) {
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2(body: impl FnOnce()) {
    body()
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn a_pass_in_place_leaves_other_holders_of_the_values_alone() {
        let device = Device::flex();
        let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let x = Tensor::<2>::from_data(TensorData::new(data.clone(), [4, 6]), &device);
        let double = |v: &mut [f32]| v.iter_mut().for_each(|x| *x *= 2.0);
        let never = |_: Tensor<2>| unreachable!("a CPU tensor without a graph");
        let shared = map_in_place_or(x.clone(), double, never);
        let strided = map_in_place_or(x.clone().transpose(), double, never).transpose();
        let owned = map_in_place_or(x.clone() * 1.0, double, never);
        assert_eq!(values(x.clone()), data);
        let want: Vec<f32> = data.iter().map(|v| v * 2.0).collect();
        for got in [shared, strided, owned] {
            assert_eq!(values(got), want);
        }
        let y = x.clone().transpose().transpose() + 0.5;
        let sum = zip_trailing_in_place_or(
            x.clone(),
            y,
            |a, b| a.iter_mut().zip(b).for_each(|(a, b)| *a += b),
            |_, _| unreachable!(),
        );
        assert_eq!(
            values(sum),
            data.iter().map(|v| 2.0 * v + 0.5).collect::<Vec<_>>()
        );
        assert_eq!(values(x), data);
    }

    #[test]
    fn strided_or_misshapen_second_operands_take_the_burn_expression() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 6], [2, 3]), &device);
        let y = Tensor::<2>::from_data(TensorData::new(vec![2.0f32; 6], [3, 2]), &device);
        let mut fallbacks = 0;
        let mut add = |x: Tensor<2>, y: Tensor<2>| {
            fallbacks += 1;
            x + y
        };
        let sum =
            zip_trailing_in_place_or(x.clone(), y.clone().transpose(), |_, _| panic!(), &mut add);
        assert_eq!(values(sum), vec![3.0; 6]);
        let _ = zip_trailing_in_place_or(
            x,
            y.reshape([6, 1]).reshape([2, 3]) * 1.0,
            |_, _| {},
            &mut add,
        );
        assert_eq!(fallbacks, 1);
    }
}
