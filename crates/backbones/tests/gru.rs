//! The text encoder against PyTorch (`reference/make_gru.py`: the official `EncoderText` on packed,
//! unsorted captions): the output, and every parameter's gradient for the loss sum(output · G).
//! On the CPU backend the GRU runs fused, without a graph and as one autodiff node with its own
//! backward pass; the Burn-op recurrence, which the other backends run, is checked on the same
//! numbers. Tolerance: max |Δ| ≤ 1e-5 (float32, toy sizes: vocabulary 11, words 7, hidden 5).

use burn::module::Param;
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use rcar_backbones::gru::GruDirection;
use rcar_backbones::text_encoder::TextEncoder;
use rcar_data::npy::read_f32;
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-5;
const DIRECTIONS: [(&str, &str); 2] = [("gru_forward", "l0"), ("gru_backward", "l0_reverse")];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gru")
}

fn npy<const D: usize>(name: &str, device: &Device) -> Tensor<D> {
    let (shape, data) = read_f32(&dir().join(format!("{name}.npy"))).unwrap();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let worst = values(got)
        .iter()
        .zip(values(want))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= TOL, "{what}: max |diff| {worst:e} > {TOL:e}");
}

fn inputs(device: &Device) -> (Tensor<2, Int>, Vec<usize>) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("inputs.json")).unwrap()).unwrap();
    let rows: Vec<Vec<i64>> = serde_json::from_value(json["ids"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(json["lengths"].clone()).unwrap();
    let (b, t) = (rows.len(), rows[0].len());
    let ids = Tensor::from_data(TensorData::new(rows.concat(), [b, t]), device);
    (ids, lengths)
}

/// PyTorch's parameters, its `[3H, in]` weights transposed into Burn's `[in, 3H]`.
fn encoder(device: &Device) -> TextEncoder {
    let mut enc = TextEncoder::new(11, 7, 5, 0.0, device);
    enc.embed.weight = Param::from_tensor(npy("embed.weight", device));
    for (gru, (_, suffix)) in [&mut enc.gru_forward, &mut enc.gru_backward]
        .into_iter()
        .zip(DIRECTIONS)
    {
        for (linear, kind) in [(&mut gru.input, "ih"), (&mut gru.hidden, "hh")] {
            let weight: Tensor<2> = npy(&format!("rnn.weight_{kind}_{suffix}"), device);
            linear.weight = Param::from_tensor(weight.transpose());
            linear.bias = Some(Param::from_tensor(npy(
                &format!("rnn.bias_{kind}_{suffix}"),
                device,
            )));
        }
    }
    enc
}

fn loss(out: Tensor<3>, device: &Device) -> Tensor<1> {
    (out * npy::<3>("upstream", device)).sum()
}

/// Every parameter's gradient against PyTorch's.
fn check_grads(what: &str, enc: &TextEncoder, grads: &Gradients, device: &Device) {
    let grad = |t: Tensor<2>| t.grad(grads).expect("a parameter's gradient");
    let grad1 = |t: Tensor<1>| t.grad(grads).expect("a parameter's gradient");
    assert_close(
        &format!("{what}: embed.weight"),
        grad(enc.embed.weight.val()),
        npy("grad_embed.weight", device),
    );
    for (gru, (field, suffix)) in [&enc.gru_forward, &enc.gru_backward]
        .into_iter()
        .zip(DIRECTIONS)
    {
        for (linear, kind) in [(&gru.input, "ih"), (&gru.hidden, "hh")] {
            let want: Tensor<2> = npy(&format!("grad_rnn.weight_{kind}_{suffix}"), device);
            assert_close(
                &format!("{what}: {field} weight_{kind}"),
                grad(linear.weight.val()),
                want.transpose(),
            );
            assert_close(
                &format!("{what}: {field} bias_{kind}"),
                grad1(linear.bias.as_ref().unwrap().val()),
                npy(&format!("grad_rnn.bias_{kind}_{suffix}"), device),
            );
        }
    }
}

#[test]
fn the_fused_encoder_matches_pytorch_forward_and_backward() {
    let plain = Device::flex();
    let (ids, lengths) = inputs(&plain);
    let out = encoder(&plain).forward(ids, &lengths);
    assert_close("output, no graph", out, npy("cap_emb", &plain));

    let device = Device::flex().autodiff();
    let enc = encoder(&device);
    let (ids, lengths) = inputs(&device);
    let out = enc.forward(ids, &lengths);
    assert_close("output, with a graph", out.clone(), npy("cap_emb", &device));
    let grads = loss(out, &device).backward();
    check_grads("fused", &enc, &grads, &device);
}

/// The Burn-op recurrence in place of the fused one: the text encoder's own steps, written out.
fn by_ops(enc: &TextEncoder, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<3> {
    let t = ids.dims()[1];
    let device = ids.device();
    let x = enc.embed.forward(ids);
    let rows: Vec<i64> = lengths
        .iter()
        .flat_map(|&n| (0..t).map(move |i| if i < n { n - 1 - i } else { i } as i64))
        .collect();
    let reverse: Tensor<3, Int> =
        Tensor::<2, Int>::from_data(TensorData::new(rows, [lengths.len(), t]), &device)
            .unsqueeze_dim(2);
    let flip = |x: Tensor<3>| {
        let dims = x.dims();
        x.gather(1, reverse.clone().expand(dims))
    };
    let run = |gru: &GruDirection, x: Tensor<3>| gru.by_ops(gru.input.forward(x));
    let both = run(&enc.gru_forward, x.clone()) + flip(run(&enc.gru_backward, flip(x)));
    let words = rcar_regulators::norm::l2norm(both.div_scalar(2.0));
    let valid: Vec<f32> = lengths
        .iter()
        .flat_map(|&n| (0..t).map(move |i| f32::from(u8::from(i < n))))
        .collect();
    words
        * Tensor::<2>::from_data(TensorData::new(valid, [lengths.len(), t]), &device)
            .unsqueeze_dim::<3>(2)
}

#[test]
fn the_burn_op_recurrence_matches_pytorch_too() {
    let device = Device::flex().autodiff();
    let enc = encoder(&device);
    let (ids, lengths) = inputs(&device);
    let out = by_ops(&enc, ids, &lengths);
    assert_close("Burn ops: output", out.clone(), npy("cap_emb", &device));
    let grads = loss(out, &device).backward();
    check_grads("Burn ops", &enc, &grads, &device);
}
