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

Under `tests/fixtures/sgraf/plugged/<host>_<mode><N>[_<variant>]/`, the same host with RCR and RAR
plugged in as `../shared/docs/plugin-backbones.md` §3 infers (+RCR, +RAR, +RCAR at N = 1 and 2, and
two variants with the open choices set otherwise): its checkpoint (RCAR's module names and mode keys
in `opt`), the eval-mode score matrix and the training step, on the host directory's inputs.

Under `tests/fixtures/sgraf/broken/`, checkpoints that must be refused by name: an unknown
`module_name`, an `opt.sim_dim` the weights disagree with, a key no SGR has, and a plugged model
whose `opt` asks for more RAR steps than it holds.
"""
import copy
import sys
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_parity import AggregationRegulator, AlignmentVector, CorrespondenceRegulator, cross_attention  # noqa: E402

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


class PluggedSimilarity(SimilarityEncoder):
    """SAF or SGR with RCR and RAR plugged in (plugin-backbones.md §3)."""

    def __init__(self, module_name, mode, steps, rar_init="host", rar_nodes="all", rar_on="reasoned",
                 rcr_alignment="own"):
        super().__init__(module_name)
        self.mode, self.steps = mode, steps
        self.rar_init, self.rar_nodes, self.rar_on = rar_init, rar_nodes, rar_on
        n_rcr = steps if mode == "only_rcr" else max(steps - 1, 0) if mode == "coop_rcar" else 0
        n_rar = steps if mode != "only_rcr" else 0
        n_alv = 0 if rcr_alignment == "shared" else n_rcr
        if n_alv:
            self.alv_modules = nn.ModuleList([AlignmentVector(EMBED, SIM) for _ in range(n_alv)])
        if n_rcr:
            self.rcr_modules = nn.ModuleList([CorrespondenceRegulator(SIM, EMBED) for _ in range(n_rcr)])
        if n_rar:
            self.rar_modules = nn.ModuleList([AggregationRegulator(SIM, 0.4) for _ in range(n_rar)])

    def layer(self, k):
        """The alignment Linear of the regulators' pass k: its own, or the host's when shared."""
        if hasattr(self, "alv_modules"):
            return self.alv_modules[k].sim_transform_w
        return self.sim_tranloc_w

    def host_agg(self, x):
        if self.module_name == "SAF":
            return x, self.SAF_module(x)
        for module in self.SGR_module:
            x = module(x)
        return x, x[:, 0, :]

    def rar_input(self, x, seed):
        raw = self.module_name == "SAF" or self.rar_on == "raw"
        if raw and not (seed and self.rar_init == "host"):
            items, host = x, None
        else:
            reasoned, host = self.host_agg(x)
            items = x if raw else reasoned
        if self.rar_nodes == "local_only":
            items = items[:, 1:]
        g = (host if self.rar_init == "host" else items.mean(1)) if seed else None
        return items, g

    def forward(self, img_emb, cap_emb, lengths, trace):
        n_image = img_emb.size(0)
        img_glo = self.v_global_w(img_emb, img_emb.mean(1))
        columns = []
        for i, n_word in enumerate(lengths):
            cap_i = cap_emb[i, :n_word].unsqueeze(0)
            q = cap_i.repeat(n_image, 1, 1)
            cap_glo = self.t_global_w(cap_i, cap_i.mean(1))
            sim_glo = l2norm(self.sim_tranglo_w((img_glo - cap_glo).pow(2)), -1)
            m, lam = torch.ones(EMBED), LAMBDA

            def local(linear):
                return l2norm(linear((q - cross_attention(q, img_emb, m, lam)).pow(2)), -1)

            def nodes(u):
                return torch.cat([sim_glo.unsqueeze(1), u], 1)

            if self.steps == 0 or self.mode == "only_rcr":
                for k in range(self.steps if self.mode == "only_rcr" else 0):
                    m, lam = self.rcr_modules[k](local(self.layer(k)), m, lam)
                _, v = self.host_agg(nodes(local(self.sim_tranloc_w)))
            elif self.mode == "only_rar":
                items, v = self.rar_input(nodes(local(self.sim_tranloc_w)), True)
                for rar in self.rar_modules:
                    v = rar(items, v)
            else:
                v = None
                for k in range(self.steps):
                    u = local(self.sim_tranloc_w if k == 0 else self.layer(k - 1))
                    items, seed = self.rar_input(nodes(u), v is None)
                    v = seed if v is None else v
                    if k < self.steps - 1:
                        m, lam = self.rcr_modules[k](u, m, lam)
                    v = self.rar_modules[k](items, v)
            columns.append(torch.sigmoid(self.sim_eval_w(v)))
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
    copies = tuple(copy.deepcopy(m) for m in modules)
    img_enc, txt_enc, sim_enc = copies
    for c in copies:
        c.train()
        for m in c.modules():
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
    return (img_enc, txt_enc, sim_enc), opt, (images, ids, lengths)


def make_plugged(host, mode, steps, variant, seed, **options):
    """The host `make` built, with RCR/RAR plugged in; writes checkpoint, scores, training step."""
    (img_enc, txt_enc, base), opt, (images, ids, lengths) = host
    torch.manual_seed(seed)
    sim_enc = PluggedSimilarity(base.module_name, mode, steps, **options)
    missing, unexpected = sim_enc.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.split(".")[0] in ("alv_modules", "rcr_modules", "rar_modules") for k in missing)
    sim_enc.eval()
    with torch.no_grad():
        sims = sim_enc(img_enc(images), txt_enc(ids, lengths), lengths, {})
    tag = {"only_rcr": "rcr", "only_rar": "rar", "coop_rcar": "rcar"}[mode]
    name = f"{base.module_name.lower()}_{tag}{steps}" + (f"_{variant}" if variant else "")
    out = OUT / "plugged" / name
    out.mkdir(parents=True, exist_ok=True)
    plugged_opt = argparse.Namespace(
        **vars(opt), self_regulator=mode,
        rcr_step=steps if mode == "only_rcr" else 0,
        rar_step=steps if mode == "only_rar" else 0,
        rcar_step=steps if mode == "coop_rcar" else 0,
        **options,
    )
    ckpt = {"epoch": 3, "model": [img_enc.state_dict(), txt_enc.state_dict(), sim_enc.state_dict()],
            "best_rsum": 100.5, "opt": plugged_opt, "Eiters": 90}
    torch.save(ckpt, out / "model_best.pth.tar", _use_new_zipfile_serialization=False)
    save(out / "sims.npy", sims)
    stats = train_step((img_enc, txt_enc, sim_enc), images, ids, lengths)
    (out / "train_step.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(name, "loss", stats["loss_sum"], stats["loss_max"])


def broken(host):
    """SGRAF-layout files that must be refused with an error naming the offending value or key."""
    (img_enc, txt_enc, sim_enc), opt, _ = host
    out = OUT / "broken"
    out.mkdir(parents=True, exist_ok=True)

    def write(name, opt_changes, sim_state=None, steps=None):
        o = argparse.Namespace(**{**vars(opt), **opt_changes})
        state = sim_state if sim_state is not None else sim_enc.state_dict()
        ckpt = {"epoch": 1, "model": [img_enc.state_dict(), txt_enc.state_dict(), state],
                "best_rsum": 0.0, "opt": o, "Eiters": 1}
        torch.save(ckpt, out / name)

    write("module_name.pth.tar", {"module_name": "SGRAF"})
    write("sim_dim.pth.tar", {"sim_dim": SIM + 2})
    extra = dict(sim_enc.state_dict())
    extra["SGR_module.3.graph_query_w.weight"] = torch.zeros(SIM, SIM)
    write("extra_key.pth.tar", {}, extra)
    write("rar_steps.pth.tar", {"self_regulator": "only_rar", "rar_step": 1, "rcr_step": 0, "rcar_step": 0})


if __name__ == "__main__":
    hosts = {"SAF": make("SAF", 1), "SGR": make("SGR", 2)}
    for k, (name, host) in enumerate(hosts.items()):
        for mode in ("only_rcr", "only_rar", "coop_rcar"):
            for steps in (1, 2):
                make_plugged(host, mode, steps, "", 10 + 10 * k + steps)
        make_plugged(host, "only_rcr", 2, "shared", 40 + k, rcr_alignment="shared")
        make_plugged(host, "coop_rcar", 2, "mean_local_raw", 50 + k,
                     rar_init="mean", rar_nodes="local_only", rar_on="raw")
    broken(hosts["SGR"])
