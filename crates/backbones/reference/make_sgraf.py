"""SGRAF's model (Diao et al., AAAI 2021; `python3.6` branch of Paranioar/SGRAF) restated in PyTorch
from `../shared/docs/plugin-backbones.md` §2, at small sizes where no two widths coincide and
E != 4·S, to check the Rust SAF and SGR hosts against. Run by hand from the repository root:

    python3 crates/backbones/reference/make_sgraf.py

For each host (SAF, SGR) it writes, under `tests/fixtures/sgraf/<host>/`:
- `model_best.pth.tar`: SGRAF's checkpoint layout ({'model': [img_enc, txt_enc, sim_enc state
  dicts], 'opt': argparse.Namespace, ...}) in torch's legacy serialization, as torch 1.1 saved the
  released ones; BatchNorm running statistics perturbed so that eval mode reads them;
- `inputs.json` (word ids, lengths) and `images.npy`;
- eval-mode intermediates: image and word embeddings, global vectors, global and local alignments,
  SAF's node weights or each SGR step's nodes, and the score matrix (images × captions);
- `train_step.json`: one training-mode step (dropout 0, BatchNorm on batch statistics, SAF's once
  per caption call) of the three images with the first three captions, in both loss modes: scores,
  hinge loss, global gradient norm, and every BatchNorm's running statistics after the first step.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

IMG_DIM, WORD_DIM, EMBED, SIM, REGIONS, VOCAB = 26, 14, 44, 18, 5, 30
LAMBDA = 9.0  # SGRAF's attention temperature, hard-coded there
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "sgraf"


def l1norm(x, dim, eps=1e-8):
    return x / (x.abs().sum(dim=dim, keepdim=True) + eps)


def l2norm(x, dim, eps=1e-8):
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + eps)


def xavier(linear):
    r = np.sqrt(6.0) / np.sqrt(linear.in_features + linear.out_features)
    linear.weight.data.uniform_(-r, r)
    linear.bias.data.fill_(0)
    return linear


class ImageEncoder(nn.Module):  # EncoderImagePrecomp
    def __init__(self):
        super().__init__()
        self.fc = xavier(nn.Linear(IMG_DIM, EMBED))

    def forward(self, images):
        return l2norm(self.fc(images), -1)


class TextEncoder(nn.Module):  # EncoderText: embedding, dropout 0.4, BiGRU `cap_rnn` averaged
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WORD_DIM)
        self.embed.weight.data.uniform_(-0.1, 0.1)
        self.dropout = nn.Dropout(0.4)
        self.cap_rnn = nn.GRU(WORD_DIM, EMBED, 1, batch_first=True, bidirectional=True)

    def forward(self, ids, lengths):
        x = self.dropout(self.embed(ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.cap_rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        out = (out[:, :, :EMBED] + out[:, :, EMBED:]) / 2
        return l2norm(out, -1)


class VisualSA(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding_local = nn.Sequential(
            xavier(nn.Linear(EMBED, EMBED)), nn.BatchNorm1d(REGIONS), nn.Tanh(), nn.Dropout(0.4))
        self.embedding_global = nn.Sequential(
            xavier(nn.Linear(EMBED, EMBED)), nn.BatchNorm1d(EMBED), nn.Tanh(), nn.Dropout(0.4))
        self.embedding_common = nn.Sequential(xavier(nn.Linear(EMBED, 1)))

    def forward(self, local, raw_global):
        l_emb = self.embedding_local(local)
        g_emb = self.embedding_global(raw_global).unsqueeze(1)
        weights = torch.softmax(self.embedding_common(l_emb * g_emb).squeeze(2), dim=1)
        return l2norm((weights.unsqueeze(2) * local).sum(dim=1), -1)


class TextSA(VisualSA):
    """VisualSA's pooling without its BatchNorms."""

    def __init__(self):
        nn.Module.__init__(self)
        self.embedding_local = nn.Sequential(xavier(nn.Linear(EMBED, EMBED)), nn.Tanh(), nn.Dropout(0.4))
        self.embedding_global = nn.Sequential(xavier(nn.Linear(EMBED, EMBED)), nn.Tanh(), nn.Dropout(0.4))
        self.embedding_common = nn.Sequential(xavier(nn.Linear(EMBED, 1)))


class GraphReasoning(nn.Module):
    def __init__(self):
        super().__init__()
        self.graph_query_w = xavier(nn.Linear(SIM, SIM))
        self.graph_key_w = xavier(nn.Linear(SIM, SIM))
        self.sim_graph_w = xavier(nn.Linear(SIM, SIM))

    def forward(self, nodes):
        edges = torch.softmax(torch.bmm(self.graph_query_w(nodes), self.graph_key_w(nodes).transpose(1, 2)), -1)
        return torch.relu(self.sim_graph_w(torch.bmm(edges, nodes)))


class AttentionFiltration(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_sim_w = xavier(nn.Linear(SIM, 1))
        self.bn = nn.BatchNorm1d(1)

    def weights(self, nodes):
        return l1norm(torch.sigmoid(self.bn(self.attn_sim_w(nodes).permute(0, 2, 1))), -1)

    def forward(self, nodes):
        return l2norm(torch.matmul(self.weights(nodes), nodes).squeeze(1), -1)


def scan_attention(query, context):
    """t2i clipped-l2norm attention: words over regions, λ = 9."""
    attn = F.leaky_relu(torch.bmm(context, query.transpose(1, 2)), 0.1)
    attn = l2norm(attn, 2).transpose(1, 2)
    attn = torch.softmax(attn * LAMBDA, dim=2)
    return l2norm(torch.bmm(attn, context), -1)


class SimilarityEncoder(nn.Module):
    def __init__(self, module_name, sgr_step=3):
        super().__init__()
        self.module_name = module_name
        self.v_global_w = VisualSA()
        self.t_global_w = TextSA()
        self.sim_tranloc_w = xavier(nn.Linear(EMBED, SIM))
        self.sim_tranglo_w = xavier(nn.Linear(EMBED, SIM))
        self.sim_eval_w = xavier(nn.Linear(SIM, 1))
        if module_name == "SGR":
            self.SGR_module = nn.ModuleList([GraphReasoning() for _ in range(sgr_step)])
        else:
            self.SAF_module = AttentionFiltration()

    def forward(self, img_emb, cap_emb, lengths, trace):
        n_image = img_emb.size(0)
        img_glo = self.v_global_w(img_emb, img_emb.mean(1))
        trace["img_glo"] = img_glo
        columns = []
        for i, n_word in enumerate(lengths):
            cap_i = cap_emb[i, :n_word].unsqueeze(0)
            cap_expand = cap_i.repeat(n_image, 1, 1)
            cap_glo = self.t_global_w(cap_i, cap_i.mean(1))
            context = scan_attention(cap_expand, img_emb)
            sim_loc = l2norm(self.sim_tranloc_w((context - cap_expand).pow(2)), -1)
            sim_glo = l2norm(self.sim_tranglo_w((img_glo - cap_glo).pow(2)), -1)
            nodes = torch.cat([sim_glo.unsqueeze(1), sim_loc], 1)
            step = {"cap_glo": cap_glo[0], "sim_glo": sim_glo, "sim_loc": sim_loc}
            if self.module_name == "SGR":
                for k, module in enumerate(self.SGR_module):
                    nodes = module(nodes)
                    step[f"nodes{k + 1}"] = nodes
                sim_vec = nodes[:, 0, :]
            else:
                if not self.training:  # a second BatchNorm call would move its running statistics
                    step["saf_weights"] = self.SAF_module.weights(nodes).squeeze(1)
                sim_vec = self.SAF_module(nodes)
            trace.setdefault("captions", []).append(step)
            columns.append(torch.sigmoid(self.sim_eval_w(sim_vec)))
        return torch.cat(columns, 1)


def perturb_batch_norms(module, g):
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm1d):
            n = bn.num_features
            bn.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(n, generator=g))
            bn.weight.data.copy_(1 + 0.2 * torch.randn(n, generator=g))
            bn.bias.data.copy_(0.1 * torch.randn(n, generator=g))
            bn.num_batches_tracked.fill_(17)


def padded(tensors, length):
    """Per-caption arrays of different lengths, zero-padded on axis 1 to `length`."""
    out = []
    for t in tensors:
        pad = [0, 0] * (t.dim() - 2) + [0, length - t.shape[1]]
        out.append(F.pad(t, pad))
    return torch.stack(out)


def hinge(scores, hardest, margin=0.2):
    """SGRAF's ContrastiveLoss (VSE++), summed; `hardest`: max_violation."""
    diagonal = scores.diag().view(-1, 1)
    eye = torch.eye(scores.size(0), dtype=torch.bool)
    cost_s = (margin + scores - diagonal).clamp(min=0).masked_fill(eye, 0)
    cost_im = (margin + scores - diagonal.t()).clamp(min=0).masked_fill(eye, 0)
    if hardest:
        cost_s, cost_im = cost_s.max(1)[0], cost_im.max(0)[0]
    return cost_s.sum() + cost_im.sum()


def train_step(modules, images, ids, lengths):
    """One training-mode step per loss mode, without dropout, on copies of `modules`."""
    img_enc, txt_enc = ImageEncoder(), TextEncoder()
    sim_enc = SimilarityEncoder(modules[2].module_name)
    copies = (img_enc, txt_enc, sim_enc)
    for copy, module in zip(copies, modules):
        copy.load_state_dict(module.state_dict())
        copy.train()
        for m in copy.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    n = images.shape[0]
    stats = {}
    for hardest in (False, True):
        for m in copies:
            m.zero_grad()
        scores = sim_enc(img_enc(images), txt_enc(ids[:n], lengths[:n]), lengths[:n], {})
        loss = hinge(scores, hardest)
        loss.backward()
        grads = [p.grad.flatten() for m in copies for p in m.parameters() if p.grad is not None]
        key = "max" if hardest else "sum"
        stats[f"loss_{key}"] = loss.item()
        stats[f"grad_norm_{key}"] = torch.cat(grads).norm().item()
        stats[f"scores_{key}"] = scores.detach().tolist()
        if not hardest:
            # PyTorch moves running_var towards the unbiased batch variance; SAF's BatchNorm moved
            # once per caption.
            for name, bn in sim_enc.named_modules():
                if isinstance(bn, nn.BatchNorm1d):
                    stats[f"{name}.running_mean"] = bn.running_mean.tolist()
                    stats[f"{name}.running_var"] = bn.running_var.tolist()
    return stats


def save(path, t):
    np.save(path, t.detach().numpy().astype(np.float32))


def make(module_name, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 100)
    img_enc, txt_enc, sim_enc = ImageEncoder(), TextEncoder(), SimilarityEncoder(module_name)
    perturb_batch_norms(sim_enc, g)
    for m in (img_enc, txt_enc, sim_enc):
        m.eval()
    lengths = [6, 4, 7, 3]
    t_max = max(lengths)
    ids = torch.zeros(len(lengths), t_max, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1, VOCAB, (n,), generator=g)
    images = torch.randn(3, REGIONS, IMG_DIM, generator=g)

    out = OUT / module_name.lower()
    out.mkdir(parents=True, exist_ok=True)
    trace = {}
    with torch.no_grad():
        img_emb = img_enc(images)
        cap_emb = txt_enc(ids, lengths)
        sims = sim_enc(img_emb, cap_emb, lengths, trace)
    opt = argparse.Namespace(
        data_path="./data/", data_name="f30k_precomp", vocab_path="./vocab/", margin=0.2,
        num_epochs=30, batch_size=128, word_dim=WORD_DIM, embed_size=EMBED, sim_dim=SIM,
        grad_clip=2.0, num_layers=1, learning_rate=2e-4, lr_update=20, workers=10, log_step=10,
        val_step=1000, logger_name="./runs/logs/", model_name="./runs/checkpoint/",
        max_violation=True, img_dim=IMG_DIM, no_imgnorm=False, no_txtnorm=False, bi_gru=True,
        module_name=module_name, sgr_step=3, vocab_size=VOCAB,
    )
    ckpt = {
        "epoch": 12,
        "model": [img_enc.state_dict(), txt_enc.state_dict(), sim_enc.state_dict()],
        "best_rsum": 487.25,
        "opt": opt,
        "Eiters": 27000,
    }
    torch.save(ckpt, out / "model_best.pth.tar", _use_new_zipfile_serialization=False)
    (out / "inputs.json").write_text(json.dumps({"ids": ids.tolist(), "lengths": lengths}) + "\n")
    save(out / "images.npy", images)
    save(out / "img_emb.npy", img_emb)
    save(out / "cap_emb.npy", cap_emb)
    save(out / "img_glo.npy", trace["img_glo"])
    steps = trace["captions"]
    save(out / "cap_glo.npy", torch.stack([s["cap_glo"] for s in steps]))
    save(out / "sim_glo.npy", torch.stack([s["sim_glo"] for s in steps]))
    save(out / "sim_loc.npy", padded([s["sim_loc"] for s in steps], t_max))
    if module_name == "SGR":
        for k in range(1, 4):
            save(out / f"nodes{k}.npy", padded([s[f"nodes{k}"] for s in steps], t_max + 1))
    else:
        save(out / "saf_weights.npy", padded([s["saf_weights"] for s in steps], t_max + 1))
    save(out / "sims.npy", sims)
    stats = train_step((img_enc, txt_enc, sim_enc), images, ids, lengths)
    (out / "train_step.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(module_name, "loss", stats["loss_sum"], stats["loss_max"], "grad", stats["grad_norm_sum"])


if __name__ == "__main__":
    make("SAF", 1)
    make("SGR", 2)
