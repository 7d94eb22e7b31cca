"""The text encoder's forward and backward pass in PyTorch (the official `EncoderText`: embedding,
bidirectional GRU on packed sequences, the two directions averaged, l2norm per word), at toy sizes
where no two widths coincide. Run by hand from the repository root:

    python3 crates/backbones/reference/make_gru.py

Writes `tests/fixtures/gru/`: `inputs.json` (word ids, lengths), every parameter as `.npy` in
PyTorch's layout, `upstream.npy` (a fixed gradient G on the output), `cap_emb.npy` and, for the loss
sum(cap_emb · G), the gradient of every parameter as `grad_<name>.npy`.
"""
import json
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gru"
VOCAB, WORD_DIM, HIDDEN = 11, 7, 5
LENGTHS = [6, 3, 1, 5]  # unsorted, as a batch arrives: packing must not depend on order


def main():
    torch.manual_seed(3)
    embed = torch.nn.Embedding(VOCAB, WORD_DIM)
    rnn = torch.nn.GRU(WORD_DIM, HIDDEN, 1, batch_first=True, bidirectional=True)
    t = max(LENGTHS)
    ids = torch.zeros(len(LENGTHS), t, dtype=torch.long)
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = torch.randint(1, VOCAB, (n,))
    packed = pack_padded_sequence(
        embed(ids), torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False
    )
    out, _ = rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)
    cap = (out[:, :, :HIDDEN] + out[:, :, HIDDEN:]) / 2
    cap = cap / (cap.pow(2).sum(dim=-1, keepdim=True).sqrt() + 1e-8)
    upstream = torch.randn(cap.shape)
    (cap * upstream).sum().backward()

    OUT.mkdir(parents=True, exist_ok=True)
    save = lambda name, x: np.save(OUT / f"{name}.npy", x.detach().numpy().astype(np.float32))
    (OUT / "inputs.json").write_text(
        json.dumps({"ids": ids.tolist(), "lengths": LENGTHS}) + "\n"
    )
    save("upstream", upstream)
    save("cap_emb", cap)
    params = {"embed.weight": embed.weight}
    params.update({f"rnn.{n}": p for n, p in rnn.named_parameters()})
    for name, p in params.items():
        save(name, p)
        save(f"grad_{name}", p.grad)
    print(f"wrote {len(params)} parameters and their gradients to {OUT}")


if __name__ == "__main__":
    main()
