"""The Rust bench's scoring blocks, for torch_bench.py, without torch: so that a test of the Rust
bench (`crates/bench/src/torch.rs`) can check this restatement against
`rcar_backbones::similarity::block_ranges` on a machine with Python but no PyTorch.

    python3 crates/bench/reference/blocks.py t2i,16,64,85 i2t,16,64,28

prints, for each DIRECTION,IMAGES,CAPTIONS,PAIRS given, one line of its blocks, separated by ";",
each as "first_image end_image first_caption end_caption" (ends exclusive).
"""

import argparse
import sys

DIRECTIONS = ("t2i", "i2t")


def block_ranges(attn_type, ni, nc, chunk, max_captions=256):
    """The blocks of an ni x nc grid: up to `chunk` pairs, t2i as whole images x up to 256 captions,
    i2t as whole captions x images, as (image slice, caption slice)."""
    t2i = attn_type == "t2i"
    groups, items = (ni, nc) if t2i else (nc, ni)
    max_groups, max_items = (groups, max_captions) if t2i else (max_captions, items)
    items_per = max(1, min(chunk, items, max_items))
    groups_per = min(max(1, chunk // items_per), max_groups)
    for g in range(0, groups, groups_per):
        for i in range(0, items, items_per):
            gs, its = slice(g, min(g + groups_per, groups)), slice(i, min(i + items_per, items))
            yield (gs, its) if t2i else (its, gs)


def block_pairs(text):
    """`--block-pairs`: "t2i=85,i2t=28" as {"t2i": 85, "i2t": 28}; an argparse error on anything
    else."""
    pairs = {}
    for item in filter(None, text.split(",")):
        direction, sep, count = item.partition("=")
        if not sep or direction not in DIRECTIONS or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected DIRECTION=PAIRS, DIRECTION one of {', '.join(DIRECTIONS)} "
                "and PAIRS a positive whole number, e.g. t2i=85,i2t=28")
        if direction in pairs:
            raise argparse.ArgumentTypeError(f"{direction} is given twice in {text!r}")
        pairs[direction] = int(count)
    return pairs


def grid_case(text):
    """DIRECTION,IMAGES,CAPTIONS,PAIRS."""
    parts = text.split(",")
    if len(parts) != 4 or parts[0] not in DIRECTIONS or not all(v.isdigit() for v in parts[1:]):
        raise argparse.ArgumentTypeError(f"{text!r}: expected DIRECTION,IMAGES,CAPTIONS,PAIRS, e.g. t2i,16,64,85")
    return (parts[0], *map(int, parts[1:]))


def main():
    p = argparse.ArgumentParser(description="the Rust bench's scoring blocks of grids")
    p.add_argument("cases", nargs="+", type=grid_case, help="DIRECTION,IMAGES,CAPTIONS,PAIRS")
    p.add_argument("--max-captions", dest="max_captions", type=int, default=256)
    a = p.parse_args()
    for direction, ni, nc, chunk in a.cases:
        blocks = block_ranges(direction, ni, nc, chunk, a.max_captions)
        print(";".join(f"{i.start} {i.stop} {c.start} {c.stop}" for i, c in blocks))


if __name__ == "__main__":
    sys.exit(main())
