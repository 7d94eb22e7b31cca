"""Fixtures in torch's legacy (pre-1.6) serialization, the format of SGRAF's released checkpoints
(its `python3.6` branch pins torch 1.1). Run by hand from the repository root:

    python3 crates/backbones/reference/make_legacy.py

Writes, with torch's own legacy writer (`_use_new_zipfile_serialization=False`):
- `tests/fixtures/parity/t2i_rcar2/checkpoint_legacy.pth`: the zip-format parity checkpoint beside
  it, re-saved; the loader must build the same model from both.
- `tests/fixtures/legacy/sgraf_layout.pth`: SGRAF's checkpoint layout at toy sizes (`model` a list of
  three state dicts, BatchNorm counters as int64, `opt` an argparse namespace), and
  `sgraf_layout.json`: every float tensor's shape and values, and the namespace, to compare with.
"""
import argparse
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def resave_parity():
    src = ROOT / "parity" / "t2i_rcar2" / "checkpoint.pth"
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    torch.save(ckpt, src.with_name("checkpoint_legacy.pth"), _use_new_zipfile_serialization=False)


def sgraf_layout():
    g = torch.Generator().manual_seed(7)
    rand = lambda *shape: torch.randn(*shape, generator=g)
    img = {"fc.weight": rand(6, 5), "fc.bias": rand(6)}
    txt = {"embed.weight": rand(9, 4), "cap_rnn.weight_ih_l0": rand(18, 4)}
    # Rows of a larger tensor: the whole storage is saved, the tensor at an offset into it.
    big = rand(4, 6)
    sim = {
        "v_global_w.embedding_local.1.weight": rand(3),
        "v_global_w.embedding_local.1.running_var": rand(3).abs(),
        "v_global_w.embedding_local.1.num_batches_tracked": torch.tensor(12),
        "sim_eval_w.weight": big[1:3],
        "sim_eval_w.bias": rand(1),
    }
    opt = argparse.Namespace(
        module_name="SAF", sim_dim=4, embed_size=6, sgr_step=3, vocab_size=9,
        img_dim=5, word_dim=4, margin=0.2, max_violation=True, bi_gru=True, data_name="f30k_precomp",
    )
    ckpt = {"epoch": 3, "model": [img, txt, sim], "best_rsum": 512.5, "opt": opt, "Eiters": 4530}
    out = ROOT / "legacy"
    out.mkdir(exist_ok=True)
    torch.save(ckpt, out / "sgraf_layout.pth", _use_new_zipfile_serialization=False)
    tensors = {}
    for i, part in enumerate([img, txt, sim]):
        for key, t in part.items():
            if t.dtype == torch.float32:
                tensors[f"{i}.{key}"] = {"shape": list(t.shape), "values": t.flatten().tolist()}
    expected = {"tensors": tensors, "opt": vars(opt), "epoch": 3, "best_rsum": 512.5, "Eiters": 4530}
    (out / "sgraf_layout.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    resave_parity()
    sgraf_layout()
