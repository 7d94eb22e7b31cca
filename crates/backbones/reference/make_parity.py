#!/usr/bin/env python3
"""Reference numbers for the Rust RCAR model (crates/backbones/tests/parity.rs). Run by hand:

    pip install torch numpy
    python3 crates/backbones/reference/make_parity.py

An independent PyTorch restatement of the official RCAR model (github Paranioar/RCAR, lib/encoders.py
and lib/modules/mlp.py, as specified in the project's rcar-spec.md §2), with the official module and
state-dict names, at small dimensions and with random weights. For each of the eight configurations
{base, only_rcr 2, only_rar 2, coop_rcar 2} x {t2i, i2t} it writes, under
crates/backbones/tests/fixtures/parity/<name>/:

* checkpoint.pth  -- torch.save of {'model': DataParallel-style state dict ('module.' keys), 'opt':
  argparse.Namespace, 'epoch', 'best_rsum', 'Eiters'}, the structure of the released checkpoints.
  BatchNorm running statistics are perturbed so that loading them is tested.
* inputs.json     -- caption ids (padded with 0) and lengths.
* *.npy           -- images and intermediate tensors (float32), per caption j against all images,
  computed the official way: one caption at a time, cut to its own length.

Intermediates (t2i: q = caption length, padded to T with zeros; i2t: q = regions):
  img_emb [n_img, R, E], cap_emb [n_cap, T, E] (pads zero), U0 [n_cap, n_img, q, S] (first alignment
  vectors), m1 [n_cap, n_img, q, E], lam1 [n_cap, n_img, q] (factors after the first RCR), g1 and g2
  [n_cap, n_img, S] (holistic vectors after RAR steps 1 and 2), U1 (second alignment vectors),
  sims [n_img, n_cap] (rows images, columns captions).
Training step (train mode, dropout p = 0, BN batch statistics, first n_img captions paired with the
images): loss_sum / loss_max (hinge, margin 0.2, summed) and grad_norm_sum / grad_norm_max (global
L2 norm of all gradients), and the BatchNorm running statistics after the first of those steps, in
train_step.json, with the trainable parameter counts (num_params, sim_enc_params, and of those the
parameters the official forward never uses).
"""

import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "parity")

# No two widths coincide, and E != 4·S: E 44, E/2 22, S 18, S/2 9, 2·S 36, image 26, word 12, vocab 30,
# regions 5, so a layer built with the wrong width cannot load or match by accident.
DIMS = dict(img_dim=26, embed_size=44, word_dim=12, sim_dim=18, vocab_size=30, regions=5)
LENGTHS = [7, 4, 5, 3]  # captions, <start>/<end> included
N_IMG = 3


def l2norm(x, dim=-1, eps=1e-8):
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + eps)


def cosine(a, b, dim=-1, eps=1e-8):
    num = (a * b).sum(dim)
    den = (a.norm(dim=dim) * b.norm(dim=dim)).clamp(min=eps)
    return num / den


class MLP(nn.Module):
    def __init__(self, d_in, hidden, d_out):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d_in, hidden), nn.Linear(hidden, d_out)])
        self.bns = nn.ModuleList([nn.BatchNorm1d(hidden), nn.BatchNorm1d(d_out)])  # bns.1 unused

    def forward(self, x):
        b, n, d = x.shape
        x = x.reshape(b * n, d)
        x = F.relu(self.bns[0](self.layers[0](x)))
        return self.layers[1](x).reshape(b, n, -1)


class EncoderImage(nn.Module):
    def __init__(self, img_dim, embed_size):
        super().__init__()
        self.fc = nn.Linear(img_dim, embed_size)
        self.mlp = MLP(img_dim, embed_size // 2, embed_size)

    def forward(self, images):
        return l2norm(self.fc(images) + self.mlp(images))


class EncoderText(nn.Module):
    def __init__(self, vocab_size, word_dim, embed_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.dropout = nn.Dropout(0.4)
        self.rnn = nn.GRU(word_dim, embed_size, 1, batch_first=True, bidirectional=True)

    def forward(self, ids, lengths):
        x = self.dropout(self.embed(ids))
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        half = out.shape[2] // 2
        return l2norm((out[:, :, :half] + out[:, :, half:]) / 2)


def cross_attention(query, context, m, smooth, context_mask=None):
    """query (n,q,E), context (n,c,E), m (E) or (n,q,E), smooth scalar or (n,q,1)."""
    attn = torch.bmm(context, (query * m).transpose(1, 2))  # (n, c, q)
    attn = F.leaky_relu(attn, 0.1)
    attn = l2norm(attn, dim=2)  # across query tokens
    logits = attn.transpose(1, 2) * smooth  # (n, q, c)
    if context_mask is not None:
        logits = logits.masked_fill(~context_mask[:, None, :], -1e9)
    return l2norm(torch.bmm(F.softmax(logits, dim=2), context))


class AlignmentVector(nn.Module):
    def __init__(self, embed_size, sim_dim):
        super().__init__()
        self.sim_transform_w = nn.Linear(embed_size, sim_dim)

    def forward(self, query, context, m, smooth):
        attended = cross_attention(query, context, m, smooth)
        return l2norm(self.sim_transform_w((query - attended).pow(2)))


class CorrespondenceRegulator(nn.Module):
    def __init__(self, sim_dim, embed_size):
        super().__init__()
        self.rcr_smooth_w = nn.Sequential(nn.Linear(sim_dim, sim_dim // 2), nn.Tanh(), nn.Linear(sim_dim // 2, 1))
        # The official hidden width is sim_dim * 2 (not embed_size // 2; equal only when E = 4·S).
        self.rcr_matrix_w = nn.Sequential(nn.Linear(sim_dim, sim_dim * 2), nn.Tanh(), nn.Linear(sim_dim * 2, embed_size))

    def forward(self, u, m, smooth):
        m = torch.clamp(torch.tanh(self.rcr_matrix_w(u)) + m, -1, 1)
        smooth = torch.relu(self.rcr_smooth_w(u) + smooth)
        return m, smooth


class AggregationRegulator(nn.Module):
    def __init__(self, sim_dim, p):
        super().__init__()
        self.rar_q_w = nn.Sequential(nn.Linear(sim_dim, sim_dim), nn.Tanh(), nn.Dropout(p))
        self.rar_k_w = nn.Sequential(nn.Linear(sim_dim, sim_dim), nn.Tanh(), nn.Dropout(p))
        self.rar_v_w = nn.Sequential(nn.Linear(sim_dim, 1))

    def forward(self, u, g):
        e = self.rar_v_w(self.rar_k_w(u) * self.rar_q_w(g).unsqueeze(1)).squeeze(2)
        beta = F.softmax(e, dim=1)
        return l2norm((beta.unsqueeze(2) * u).sum(1))


class EncoderSimilarity(nn.Module):
    def __init__(self, opt, p):
        super().__init__()
        self.opt = opt
        mode, e, s = opt.self_regulator, opt.embed_size, opt.sim_dim
        if mode == "only_rcr":
            n_alv, n_rcr, n_rar = opt.rcr_step, opt.rcr_step, 0
        elif mode == "only_rar":
            n_alv, n_rcr, n_rar = 1, 0, opt.rar_step
        else:
            n_alv, n_rcr, n_rar = opt.rcar_step, opt.rcar_step - 1, opt.rcar_step
        self.sim_eval_w = nn.Linear(s, 1)
        if n_alv:
            self.alv_modules = nn.ModuleList([AlignmentVector(e, s) for _ in range(n_alv)])
        if n_rcr:
            self.rcr_modules = nn.ModuleList([CorrespondenceRegulator(s, e) for _ in range(n_rcr)])
        if n_rar:
            self.rar_modules = nn.ModuleList([AggregationRegulator(s, p) for _ in range(n_rar)])

    def caption_column(self, img_emb, cap, rec):
        """Scores of one caption (L, E) against all images; fills `rec` with intermediates."""
        opt = self.opt
        n = img_emb.shape[0]
        words = cap.unsqueeze(0).repeat(n, 1, 1)
        if opt.attn_type == "t2i":
            q, c, smooth = words, img_emb, opt.t2i_smooth
        else:
            q, c, smooth = img_emb, words, opt.i2t_smooth
        m = torch.ones(opt.embed_size)
        mode = opt.self_regulator
        if mode == "only_rcr":
            for s in range(opt.rcr_step):
                u = self.alv_modules[s](q, c, m, smooth)
                rec.setdefault(f"U{s}", u)
                m, smooth = self.rcr_modules[s](u, m, smooth)
                rec.setdefault(f"m{s + 1}", m)
                rec.setdefault(f"lam{s + 1}", smooth.squeeze(2))
            attended = cross_attention(q, c, m, smooth)
            return cosine(q, attended).mean(1)
        if mode == "only_rar":
            u = self.alv_modules[0](q, c, m, smooth)
            rec["U0"] = u
            g = u.mean(1)
            for s in range(opt.rar_step):
                g = self.rar_modules[s](u, g)
                rec[f"g{s + 1}"] = g
        else:
            for s in range(opt.rcar_step):
                u = self.alv_modules[s](q, c, m, smooth)
                rec[f"U{s}"] = u
                if s == 0:
                    g = u.mean(1)
                if s < opt.rcar_step - 1:
                    m, smooth = self.rcr_modules[s](u, m, smooth)
                    rec[f"m{s + 1}"], rec[f"lam{s + 1}"] = m, smooth.squeeze(2)
                g = self.rar_modules[s](u, g)
                rec[f"g{s + 1}"] = g
        return torch.sigmoid(self.sim_eval_w(g)).squeeze(1)

    def forward(self, img_emb, cap_emb, lengths):
        records, columns = [], []
        for j, length in enumerate(lengths):
            rec = {}
            columns.append(self.caption_column(img_emb, cap_emb[j, :length], rec))
            records.append(rec)
        return torch.stack(columns, 1), records


class SCANpp(nn.Module):
    def __init__(self, opt, p=0.4):
        super().__init__()
        self.img_enc = EncoderImage(opt.img_dim, opt.embed_size)
        self.txt_enc = EncoderText(opt.vocab_size, opt.word_dim, opt.embed_size)
        self.sim_enc = EncoderSimilarity(opt, p)
        if p == 0:
            self.txt_enc.dropout.p = 0.0


def make_opt(attn_type, mode, steps):
    return argparse.Namespace(
        data_name="f30k", attn_type=attn_type, self_regulator=mode,
        rcar_step=steps if mode == "coop_rcar" else 0,
        rcr_step=steps if mode == "only_rcr" else 0,
        rar_step=steps if mode == "only_rar" else 0,
        t2i_smooth=10.0, i2t_smooth=3.0, margin=0.2, num_layers=1, use_bi_gru=True,
        no_imgnorm=False, no_txtnorm=False, grad_clip=2.0, learning_rate=5e-4,
        img_dim=DIMS["img_dim"], embed_size=DIMS["embed_size"], word_dim=DIMS["word_dim"],
        sim_dim=DIMS["sim_dim"], vocab_size=DIMS["vocab_size"],
    )


def hinge(scores, hardest, margin=0.2):
    diag = scores.diag().view(-1, 1)
    cost_s = (margin + scores - diag).clamp(min=0)
    cost_im = (margin + scores - diag.t()).clamp(min=0)
    eye = torch.eye(scores.shape[0], dtype=torch.bool)
    cost_s, cost_im = cost_s.masked_fill(eye, 0), cost_im.masked_fill(eye, 0)
    if hardest:
        return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()
    return cost_s.sum() + cost_im.sum()


def randomise(model, gen):
    """Random weights (wider than the init so every path matters) and perturbed BN statistics."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.dim() > 1 else 0.1))
        for bn in model.img_enc.mlp.bns:
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=gen) * 0.2)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=gen) + 0.5)
            bn.num_batches_tracked.fill_(123)


def save(dirname, name, tensor):
    np.save(os.path.join(dirname, name + ".npy"), np.ascontiguousarray(tensor.detach().numpy(), dtype=np.float32))


def stack_records(records, key, q_len):
    """(n_img, q, X) per caption -> (n_cap, n_img, Q, X), zero-padded along q."""
    first = next(r[key] for r in records if key in r)
    shape = (len(records), first.shape[0], q_len) + tuple(first.shape[2:])
    out = torch.zeros(shape)
    for j, r in enumerate(records):
        out[j, :, : r[key].shape[1]] = r[key]
    return out


def run(attn_type, mode, steps, name, gen):
    opt = make_opt(attn_type, mode, steps)
    model = SCANpp(opt)
    randomise(model, gen)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    torch.save(
        {"model": {"module." + k: v for k, v in model.state_dict().items()}, "opt": opt,
         "epoch": 7, "best_rsum": 123.4, "Eiters": 4567},
        os.path.join(d, "checkpoint.pth"),
    )
    images = torch.rand(N_IMG, DIMS["regions"], DIMS["img_dim"], generator=gen) * 3
    t = max(LENGTHS)
    ids = torch.zeros(len(LENGTHS), t, dtype=torch.long)
    for j, length in enumerate(LENGTHS):
        ids[j, 0], ids[j, length - 1] = 1, 2
        ids[j, 1 : length - 1] = torch.randint(3, DIMS["vocab_size"], (length - 2,), generator=gen)
    np.save(os.path.join(d, "images.npy"), images.numpy().astype(np.float32))
    with open(os.path.join(d, "inputs.json"), "w") as f:
        json.dump({"ids": ids.tolist(), "lengths": LENGTHS}, f)

    model.eval()
    with torch.no_grad():
        img_emb = model.img_enc(images)
        cap_emb = model.txt_enc(ids, LENGTHS)
        sims, records = model.sim_enc(img_emb, cap_emb, LENGTHS)
    save(d, "img_emb", img_emb)
    save(d, "cap_emb", cap_emb)
    save(d, "sims", sims)
    q_len = t if attn_type == "t2i" else DIMS["regions"]
    for key in ["U0", "U1", "m1", "lam1", "g1", "g2"]:
        if any(key in r for r in records):
            if key.startswith("g"):
                save(d, key, torch.stack([r[key] for r in records]))
            else:
                save(d, key, stack_records(records, key, q_len))

    # One training-mode step without dropout: BN batch statistics, the first N_IMG captions.
    train_model = SCANpp(opt, p=0.0)
    train_model.load_state_dict(model.state_dict())
    train_model.train()
    stats = {}
    for hardest in (False, True):
        train_model.zero_grad()
        n = N_IMG
        scores, _ = train_model.sim_enc(train_model.img_enc(images), train_model.txt_enc(ids[:n], LENGTHS[:n]), LENGTHS[:n])
        loss = hinge(scores, hardest)
        loss.backward()
        grads = [p.grad.flatten() for p in train_model.parameters() if p.grad is not None]
        key = "max" if hardest else "sum"
        stats[f"loss_{key}"] = loss.item()
        stats[f"grad_norm_{key}"] = torch.cat(grads).norm().item()
        stats[f"scores_{key}"] = scores.detach().tolist()
        if not hardest:
            # PyTorch moves running_var towards the unbiased batch variance.
            bn = train_model.img_enc.mlp.bns[0]
            stats["bn_running_mean"] = bn.running_mean.tolist()
            stats["bn_running_var"] = bn.running_var.tolist()
    # Trainable parameters: the whole model and its similarity encoder (built-but-unused layers
    # included, as the official model builds them).
    count = lambda module: sum(p.numel() for p in module.parameters())
    stats["num_params"] = count(model)
    stats["sim_enc_params"] = count(model.sim_enc)
    # Built but never used by the official forward: the MLP's second BatchNorm, and the sigmoid head
    # in only_rcr (its score is the mean cosine).
    stats["unused_sim_enc_params"] = count(model.sim_enc.sim_eval_w) if mode == "only_rcr" else 0
    stats["unused_params"] = count(model.img_enc.mlp.bns[1]) + stats["unused_sim_enc_params"]
    with open(os.path.join(d, "train_step.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(name, "sims", sims.shape, stats["loss_sum"], stats["grad_norm_sum"])


def broken_checkpoints():
    """Official-structure files that must be refused with an error naming the offending key."""
    d = os.path.join(OUT, "broken")
    os.makedirs(d, exist_ok=True)
    good = torch.load(os.path.join(OUT, "t2i_rcar2", "checkpoint.pth"), weights_only=False)
    shape = dict(good, model=dict(good["model"]))
    shape["model"]["module.txt_enc.embed.weight"] = torch.zeros(DIMS["vocab_size"] + 1, DIMS["word_dim"])
    torch.save(shape, os.path.join(d, "embed_shape.pth"))
    extra = dict(good, model=dict(good["model"]))
    extra["model"]["module.sim_enc.rcr_modules.5.rcr_smooth_w.0.bias"] = torch.zeros(8)
    torch.save(extra, os.path.join(d, "extra_key.pth"))
    # The RCR matrix head at E/2 hidden width (an earlier slip of this project) must not load.
    narrow = dict(good, model=dict(good["model"]))
    e, s = DIMS["embed_size"], DIMS["sim_dim"]
    narrow["model"]["module.sim_enc.rcr_modules.0.rcr_matrix_w.0.weight"] = torch.zeros(e // 2, s)
    narrow["model"]["module.sim_enc.rcr_modules.0.rcr_matrix_w.0.bias"] = torch.zeros(e // 2)
    narrow["model"]["module.sim_enc.rcr_modules.0.rcr_matrix_w.2.weight"] = torch.zeros(e, e // 2)
    torch.save(narrow, os.path.join(d, "rcr_hidden_e_half.pth"))
    no_opt = {k: v for k, v in good.items() if k != "opt"}
    torch.save(no_opt, os.path.join(d, "no_opt.pth"))
    torch.save({"weights": torch.zeros(3)}, os.path.join(d, "not_rcar.pth"))


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    for attn_type in ("t2i", "i2t"):
        for mode, steps, tag in (("only_rcr", 0, "base"), ("only_rcr", 2, "rcr2"), ("only_rar", 2, "rar2"), ("coop_rcar", 2, "rcar2")):
            run(attn_type, mode, steps, f"{attn_type}_{tag}", gen)
    broken_checkpoints()


if __name__ == "__main__":
    main()
