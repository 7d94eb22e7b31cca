#!/usr/bin/env python3
"""The bench's workloads in PyTorch, for a side-by-side ratio on the same machine (run by hand, or by
`cargo xtask bench --compare-torch`, which passes the bench's own shapes and thread count):

    pip install torch numpy
    python3 crates/bench/reference/torch_bench.py --threads 2 --json torch.json
    python3 crates/bench/reference/torch_bench.py --threads 2 --profile   # ops' shares of a block

On a GPU (`--device cuda`, as scripts/gpu-check runs it) every tensor and the model live on the
device, each timed call ends with torch.cuda.synchronize(), and peaks are the device's allocator
peaks (torch.cuda.max_memory_allocated) instead of resident memory.

PyTorch's CPU speed depends on the malloc it runs with: glibc's returns each large tensor to the OS
and faults its pages in again, which cost PyTorch about half its speed on this model on a 2-core
Xeon. Preload a caching one for its best figures, e.g.
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 (`cargo xtask bench --torch-preload`);
the summary names it.

A batched PyTorch restatement of the RCAR model (the official lib/encoders.py, as
crates/backbones/reference/make_parity.py restates it caption by caption): a block of images x
captions is scored in one pass of tensor products, as a PyTorch user would write it for speed. The
script first checks that this batched model gives make_parity.py's scores (small sizes, every mode and
direction), so the timings are of the same function.

Rows, named as the Rust bench names them: the two encoders (inference), pair scoring of a grid
(no_grad, eval mode, in the Rust bench's blocks: --block-pairs) per direction and mode, the dense
training step (all B^2 pairs with the graph, hardest-negative hinge, backward, global-norm clipping
at 2.0, AdamW) at each batch, and torch's BLAS rate on the Rust bench's reference product shapes.
Each row: median seconds, peak resident memory (training steps). Captions all have --words tokens,
as in the Rust bench (no padding). Stdout: one JSON line per row as it is measured ({"row": ...}),
then {"summary": ...}; --json also writes all.
With --serve, the rows after the reference products run as stdin asks for them, whole or one call
at a time (see serve()).
"""

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from blocks import block_pairs, block_ranges

MODES = [("only_rcr", 0), ("only_rar", 2), ("only_rcr", 2), ("coop_rcar", 2)]


def l2norm(x, dim=-1, eps=1e-8):
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + eps)


def cosine(a, b, dim=-1, eps=1e-8):
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim)).clamp(min=eps)


class Model(nn.Module):
    """The official model's modules and state-dict names (make_parity.SCANpp), batched forward."""

    def __init__(self, opt):
        super().__init__()
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "backbones", "reference"))
        import make_parity  # the caption-by-caption restatement: the same modules, checked below

        self.opt = opt
        self.parity = make_parity
        self.official = make_parity.SCANpp(opt, p=0.0)

    # -- encoders ------------------------------------------------------------------------------
    def encode_images(self, images):
        return self.official.img_enc(images)

    def encode_captions(self, ids):
        txt = self.official.txt_enc
        out, _ = txt.rnn(txt.dropout(txt.embed(ids)))
        half = out.shape[2] // 2
        return l2norm((out[:, :, :half] + out[:, :, half:]) / 2)

    # -- similarity of a block: every image with every caption, rows images --------------------
    def block(self, img, cap):
        opt, sim = self.opt, self.official.sim_enc
        g_n, n = img.shape[0], cap.shape[0]
        if opt.attn_type == "t2i":
            q = cap.unsqueeze(0).expand(g_n, -1, -1, -1).reshape(g_n * n, cap.shape[1], -1)
            c = img.unsqueeze(1).expand(-1, n, -1, -1).reshape(g_n * n, img.shape[1], -1)
            smooth = opt.t2i_smooth
        else:
            q = img.unsqueeze(1).expand(-1, n, -1, -1).reshape(g_n * n, img.shape[1], -1)
            c = cap.unsqueeze(0).expand(g_n, -1, -1, -1).reshape(g_n * n, cap.shape[1], -1)
            smooth = opt.i2t_smooth
        m = torch.ones(opt.embed_size, device=img.device)
        mode = opt.self_regulator
        if mode == "only_rcr":
            for s in range(opt.rcr_step):
                u = sim.alv_modules[s](q, c, m, smooth)
                m, smooth = sim.rcr_modules[s](u, m, smooth)
            attended = self.parity.cross_attention(q, c, m, smooth)
            scores = cosine(q, attended).mean(1)
        else:
            steps = opt.rar_step if mode == "only_rar" else opt.rcar_step
            g = None
            for s in range(steps):
                if mode == "coop_rcar" or s == 0:
                    u = sim.alv_modules[s](q, c, m, smooth)
                if g is None:
                    g = u.mean(1)
                if mode == "coop_rcar" and s < steps - 1:
                    m, smooth = sim.rcr_modules[s](u, m, smooth)
                g = sim.rar_modules[s](u, g)
            scores = torch.sigmoid(sim.sim_eval_w(g)).squeeze(1)
        return scores.view(g_n, n)


def make_opt(a, attn_type, mode, steps):
    return argparse.Namespace(
        attn_type=attn_type, self_regulator=mode,
        rcar_step=steps if mode == "coop_rcar" else 0,
        rcr_step=steps if mode == "only_rcr" else 0,
        rar_step=steps if mode == "only_rar" else 0,
        t2i_smooth=10.0, i2t_smooth=3.0, img_dim=a.img_dim, embed_size=a.embed_size,
        word_dim=a.word_dim, sim_dim=a.sim_dim, vocab_size=a.vocab_size,
    )


def check_against_reference():
    """The batched model equals make_parity's caption-by-caption one (which the Rust parity tests
    compare with), at small sizes, in every mode and direction."""
    small = argparse.Namespace(img_dim=26, embed_size=44, word_dim=12, sim_dim=18, vocab_size=30)
    gen = torch.Generator().manual_seed(0)
    for attn_type in ("t2i", "i2t"):
        for mode, steps in MODES:
            model = Model(make_opt(small, attn_type, mode, steps)).eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
                images = torch.rand(3, 5, 26, generator=gen)
                ids = torch.randint(3, 30, (4, 6), generator=gen)
                img, cap = model.encode_images(images), model.encode_captions(ids)
                got = model.block(img, cap)
                want, _ = model.official.sim_enc(img, cap, [6] * 4)
            diff = (got - want).abs().max().item()
            assert diff < 1e-5, f"{attn_type} {mode} {steps}: batched model differs by {diff}"


def hinge_hardest(scores, margin=0.2):
    diag = scores.diag().view(-1, 1)
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_s = (margin + scores - diag).clamp(min=0).masked_fill(eye, 0)
    cost_im = (margin + scores - diag.t()).clamp(min=0).masked_fill(eye, 0)
    return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()


def release_free_memory():
    """Returns the pages malloc keeps for reuse to the OS (tcmalloc's, or glibc's malloc_trim), so
    that a peak read after it is the next workload's own: with tcmalloc's cache of an earlier row's
    pages, the two small steps of `step_estimate` both read that cache as their peak, the estimate
    lost its growth with the batch, and a batch far too large for the machine was run."""
    process = ctypes.CDLL(None)
    if hasattr(process, "MallocExtension_ReleaseFreeMemory"):
        process.MallocExtension_ReleaseFreeMemory()
    elif hasattr(process, "malloc_trim"):
        process.malloc_trim(ctypes.c_size_t(0))


def release_between_rows():
    """--serve: gives back what a finished row left in malloc's cache. The bench's own rows run
    while this process waits, and after PyTorch's batch-128 training step tcmalloc kept almost all
    of the machine's memory, so the bench skipped rows for memory it did not have."""
    if DEVICE.type == "cpu":
        gc.collect()
        release_free_memory()


def peak_rss_reset():
    """Starts a new peak; returns the memory in use now, which the peak starts from."""
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status_bytes("VmRSS:") or 0


def status_bytes(field):
    """A size from /proc/self/status (`VmHWM:`, `VmRSS:`), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes():
    if DEVICE.type == "cuda":
        return torch.cuda.max_memory_allocated()
    return status_bytes("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# Where the timed workloads run (--device); the parity check stays on the CPU.
DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, warmup, runs):
    """Median seconds of fn's runs after the warm-up, their peak memory, and what was in use when
    they started (the peak less this is what fn itself grew by)."""
    for _ in range(warmup):
        fn()
    sync()
    base = peak_rss_reset()
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak_rss_bytes(), base


PRODUCTS = ("aten::addmm", "aten::bmm", "aten::mm")


def profile_blocks(a):
    """--profile: where PyTorch's time goes in one coop_rcar 2 scoring block of each direction
    (torch.profiler, self time per op, summed over --runs blocks after --warmup): the matrix
    products' share, then the ten largest ops. Compare with this project's own split (perf, or
    `cargo xtask bench --profile`): a side that spends a smaller share outside the products gains
    that much over the other when both multiply at the same rate."""
    from torch.profiler import ProfilerActivity, profile

    ni, nc = map(int, a.grid.split("x"))
    for attn_type in ("t2i", "i2t"):
        model = Model(make_opt(a, attn_type, "coop_rcar", 2)).eval().to(DEVICE)
        with torch.no_grad():
            img = model.encode_images(torch.randn(ni, a.regions, a.img_dim, device=DEVICE))
            cap = model.encode_captions(torch.randint(4, a.vocab_size, (nc, a.words), device=DEVICE))
            for _ in range(a.warmup):
                model.block(img, cap)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(max(a.runs, 1)):
                    model.block(img, cap)
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ops)
        products = sum(e.self_cpu_time_total for e in ops if e.key in PRODUCTS)
        print(f"similarity {attn_type} coop_rcar 2, {ni}×{nc}: matrix products "
              f"({', '.join(PRODUCTS)}) {100 * products / total:.1f}% of the time")
        for e in ops[:10]:
            print(f"  {e.key:<24} {100 * e.self_cpu_time_total / total:5.1f}%")


def train_step(a, b):
    """One dense training step at batch b, as a closure over its model, optimiser and batch."""
    model = Model(make_opt(a, a.train_direction, a.train_mode, a.train_steps)).train().to(DEVICE)
    optim = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    images = torch.randn(b, a.regions, a.img_dim, device=DEVICE)
    ids = torch.randint(4, a.vocab_size, (b, a.words), device=DEVICE)

    def step():
        optim.zero_grad()
        scores = model.block(model.encode_images(images), model.encode_captions(ids))
        hinge_hardest(scores).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optim.step()

    return step


# The two batches a dense step too large to run is extrapolated from (step_estimate).
ESTIMATE_BATCHES = (32, 48)


def step_estimate(a, b):
    """Peak resident bytes and seconds of a dense step at batch b, extrapolated from steps at batches
    32 and 48 (large enough for the pairs, b^2, to dominate), as the Rust bench estimates its peak.
    The time is fitted as alpha*b + beta*b^2 (encoders per item, pairs per pair) through the two
    medians; None, None where b is small enough to run.

    The peaks are resident sets, which move by a few hundred MB with what malloc keeps, and the
    slope through two batches multiplies that: from batches 16 and 24 the estimate at 128 is
    (128^2 - 24^2) / (24^2 - 16^2) = 49 times the difference of their growths, and it read 20 GiB
    run alone and 48 GiB inside the bench, for a step that needs 22 GB. From 32 and 48 it is 11
    times, and each growth is four times as large against the same noise."""
    small, large = ESTIMATE_BATCHES
    if b <= large:
        return None, None
    growths, times = [], []
    for n in (small, large):
        t, peak, base = timed(train_step(a, n), a.warmup, a.runs)
        # Each step's own growth: the absolute peaks also held what malloc kept from before, which
        # differed between the two and put the estimate at 22 GB in one run and 48 in the next.
        growths.append(peak - base)
        times.append(t)
    slope = max(growths[1] - growths[0], 0) / (large * large - small * small)
    beta = (times[1] / large - times[0] / small) / (large - small)
    alpha = times[0] / small - beta * small
    if alpha < 0 or beta < 0:  # noise: fall back to the pairs alone
        alpha, beta = 0.0, times[1] / (large * large)
    return base + growths[1] + slope * (b * b - large * large), alpha * b + beta * b * b


def host_ceiling():
    """What this process could grow to: its resident set plus what the kernel calls available."""
    try:
        fields = {}
        for path in ("/proc/meminfo", "/proc/self/status"):
            with open(path) as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    fields[key] = int(rest.split()[0]) * 1024 if rest.split() and rest.split()[0].isdigit() else 0
        return fields["MemAvailable"] + fields["VmRSS"]
    except (OSError, KeyError):
        return None


def workloads(a):
    """The rows after the reference products, in the Rust bench's order: (name, run, prepare). `run()`
    builds the row's model and inputs, times it and returns (name, value, unit, seconds[, peak]), or
    a skipped row's dict. `prepare()` builds them to be timed one call at a time and returns (call,
    items, unit), or None for a training step too large to run beside the bench."""
    b, (ni, nc) = a.encode_batch, map(int, a.grid.split("x"))

    def by_calls(name, prepare):
        def run():
            call, items, unit = prepare()
            t, _, _ = timed(call, a.warmup, a.runs)
            return name, items / t, unit, t
        return name, run, prepare

    def encoder(kind):
        def prepare():
            model = Model(make_opt(a, "t2i", "only_rcr", 0)).eval().to(DEVICE)
            if kind == "image":
                x = torch.randn(b, a.regions, a.img_dim, device=DEVICE)
                return torch.no_grad()(lambda: model.encode_images(x)), b, "images/s"
            ids = torch.randint(4, a.vocab_size, (b, a.words), device=DEVICE)
            return torch.no_grad()(lambda: model.encode_captions(ids)), b, "captions/s"
        return by_calls(f"{kind} encoder, batch {b}", prepare)

    def scoring(attn_type, mode, steps):
        def prepare():
            model = Model(make_opt(a, attn_type, mode, steps)).eval().to(DEVICE)
            with torch.no_grad():
                img = model.encode_images(torch.randn(ni, a.regions, a.img_dim, device=DEVICE))
                cap = model.encode_captions(torch.randint(4, a.vocab_size, (nc, a.words), device=DEVICE))
            blocks = list(block_ranges(attn_type, ni, nc, a.block_pairs.get(attn_type, ni * nc)))

            @torch.no_grad()
            def call():
                scores = torch.empty(ni, nc, device=DEVICE)
                for images, captions in blocks:
                    scores[images, captions] = model.block(img[images], cap[captions])
                return scores
            # Checked against the grid scored the other way round, by image where the blocks hold
            # whole captions (i2t) and by caption where they hold whole images (t2i): in one block
            # the grid may not fit (i2t at the GPU's GRID=128x640 would need about 120 GB).
            with torch.no_grad():
                if attn_type == "i2t":
                    other = torch.cat([model.block(img[i:i + 1], cap) for i in range(ni)], 0)
                else:
                    other = torch.cat([model.block(img, cap[j:j + 1]) for j in range(nc)], 1)
            assert torch.allclose(call(), other, atol=1e-5), "the blocks give the grid's scores"
            return call, ni * nc, "pairs/s"
        steps_name = "baseline" if steps == 0 else f"{mode} {steps}"
        return by_calls(f"similarity {attn_type} {steps_name}, {ni}×{nc}", prepare)

    def training(b):
        steps = "baseline" if a.train_steps == 0 else f"{a.train_mode} {a.train_steps}"
        label = f"train step {a.train_direction} {steps}, batch {b}"

        def room():
            """Whether the step fits in this machine's memory now, with the estimate behind it. The
            extrapolation guards this machine's memory; a GPU's runs out with a clear error."""
            estimate, seconds = step_estimate(a, b) if DEVICE.type == "cpu" else (None, None)
            ceiling = host_ceiling()
            fits = estimate is None or ceiling is None or estimate <= 0.9 * ceiling
            return fits, estimate, ceiling, seconds

        def run():
            fits, estimate, ceiling, seconds = room()
            if not fits:
                print(f"  {label:<44} skipped: about {estimate / 2**30:.1f} GiB, {ceiling / 2**30:.1f} GiB"
                      f" here; about {seconds:.2f} s a step, extrapolated", file=sys.stderr, flush=True)
                return dict(name=label, skipped=True, estimate=estimate, ceiling=ceiling,
                            extrapolated=b * b / seconds, extrapolated_seconds=seconds,
                            extrapolated_from=list(ESTIMATE_BATCHES))
            t, peak, _ = timed(train_step(a, b), a.warmup, a.runs)
            return label, b * b / t, "pairs/s", t, peak

        def prepare():
            # Beside the bench a step must leave room for it: None where it would not fit.
            return (train_step(a, b), b * b, "pairs/s") if room()[0] else None
        return label, run, prepare

    yield encoder("image")
    yield encoder("text")
    for attn_type in ("t2i", "i2t"):
        for mode, steps in MODES:
            yield scoring(attn_type, mode, steps)
    for batch in [int(x) for x in a.train_batches.split(",") if x.strip()]:
        yield training(batch)


def serve(a, rows, record):
    """--serve: announces its rows ({"ready": {"rows": [...], "single": [...], "first": [...]}}), then
    answers each line of stdin as it arrives, until stdin closes: NAME runs that row whole; once<TAB>
    NAME times one call of it (a row in "single"; the row is built, and warmed up, the first time it
    is asked; a training step that would not fit beside the bench answers skipped). "first": the
    rows to run whole before the bench's own, while it holds little memory.
    `cargo xtask bench --compare-torch` alternates its own timed calls with PyTorch's, so that the
    two sides of a ratio run within seconds of each other: this machine's speed moves by up to 2x
    over minutes, which one whole run after the other turned into the ratios."""
    runs = {name: run for name, run, _ in rows}
    prepares = {name: prepare for name, _, prepare in rows}
    # The training steps are also offered whole, to run before the bench's own rows: the largest
    # may fit in memory only then.
    first = [name for name in runs if name.startswith("train step")]
    print(json.dumps(dict(ready=dict(rows=list(runs), single=list(prepares), first=first))), flush=True)
    prepared = {}  # the one row being timed call by call
    for line in sys.stdin:
        request = line.rstrip("\n")
        once, _, name = request.partition("\t") if "\t" in request else ("", "", request)
        if once and once != "once" or name not in (prepares if once else runs):
            raise SystemExit(f"--serve: no row named {request!r}")
        if not once:
            record(runs[name](), quiet=True)  # the bench prints it beside its own
            release_between_rows()
            continue
        if name not in prepared:
            prepared.clear()
            release_between_rows()
            prepared[name] = prepares[name]()
            for _ in range(a.warmup if prepared[name] else 0):
                prepared[name][0]()
        if prepared[name] is None:
            record(dict(name=name, skipped=True))  # too large beside the bench
            continue
        call, items, unit = prepared[name]
        sync()
        start = time.perf_counter()
        call()
        sync()
        t = time.perf_counter() - start
        record((name, items / t, unit, t), quiet=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--img-dim", dest="img_dim", type=int, default=2048)
    p.add_argument("--embed-size", dest="embed_size", type=int, default=1024)
    p.add_argument("--word-dim", dest="word_dim", type=int, default=300)
    p.add_argument("--sim-dim", dest="sim_dim", type=int, default=256)
    p.add_argument("--vocab-size", dest="vocab_size", type=int, default=8482)
    p.add_argument("--regions", type=int, default=36)
    p.add_argument("--words", type=int, default=12)
    p.add_argument("--grid", default="16x64")
    p.add_argument("--encode-batch", dest="encode_batch", type=int, default=128)
    p.add_argument("--train-batches", dest="train_batches", default="32,128")
    p.add_argument("--train-direction", dest="train_direction", default="t2i")
    p.add_argument("--train-mode", dest="train_mode", default="coop_rcar")
    p.add_argument("--train-steps", dest="train_steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--gemm", default="12288x1024x256,12288x512x1024", help="MxKxN,... reference shapes")
    p.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU")
    p.add_argument("--block-pairs", dest="block_pairs", type=block_pairs, default={},
                   help="pairs per scoring block by direction, as the Rust bench's, e.g. t2i=85,i2t=28 "
                        "(a direction not named: the whole grid in one block)")
    p.add_argument("--json")
    p.add_argument("--serve", action="store_true",
                   help="after the reference products, run the rows named on stdin, one per line")
    p.add_argument("--profile", action="store_true",
                   help="instead of the rows, the share of each op in a coop_rcar 2 scoring block")
    a = p.parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    check_against_reference()
    if a.profile:
        profile_blocks(a)
        return
    rows = []

    def row(name, value, unit, seconds, peak=None, quiet=False):
        row_of(dict(name=name, value=value, unit=unit, seconds=seconds, peak_rss=peak))
        if not quiet:
            print(f"  {name:<44} {value:>10.1f} {unit:<10} {seconds:>9.3f} s", file=sys.stderr, flush=True)

    def row_of(fields):
        # One JSON line per row on stdout as soon as it is measured: a run killed for memory at a
        # large batch still leaves the rows before it.
        rows.append(fields)
        print(json.dumps(dict(row=fields)), flush=True)

    def record(result, quiet=False):
        row_of(result) if isinstance(result, dict) else row(*result, quiet=quiet)

    best = (0.0, "")
    for shape in a.gemm.split(","):
        m, k, n = map(int, shape.split("x"))
        lhs, rhs = torch.rand(m, k, device=DEVICE), torch.rand(k, n, device=DEVICE)
        t, _, _ = timed(lambda: torch.mm(lhs, rhs), a.warmup, a.runs)
        rate = 2.0 * m * k * n / t / 1e9
        row(f"torch.mm {m}×{k}·{k}×{n}", rate, "GFLOP/s", t)
        best = max(best, (rate, f"{m}×{k}·{k}×{n}"))

    # Not `rows`: that is the list `row_of` fills.
    planned = list(workloads(a))
    if a.serve:
        serve(a, planned, record)
    else:
        for _, run, _ in planned:
            record(run())

    preload = os.environ.get("LD_PRELOAD", "")
    out = dict(torch=torch.__version__, threads=torch.get_num_threads(),
               gpu=torch.cuda.get_device_name() if DEVICE.type == "cuda" else None,
               allocator=os.path.basename(preload) if preload else "glibc malloc (default)",
               blas="MKL" if torch.backends.mkl.is_available() else "not MKL",
               reference_gflops=best[0], reference=f"torch.mm, {best[1]}", rows=rows)
    print(json.dumps(dict(summary={k: v for k, v in out.items() if k != "rows"})), flush=True)
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(out, indent=1))
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
