"""Table of bench/suite/windows.sh: per image and window, the excess reconstruction loss per
pixel and the ARI.

Usage: python3 bench/suite/windows.py OUT_DIR

For each run OUT_DIR/runs/w<W>/<image>: the final epoch's reconstruction term of history.csv
(nats per patch) divided by W^2, minus an estimate of its floor: the mean Bernoulli entropy
H(x) of the image min-max scaled to [0, 1] (what a decoder that reproduced every pixel,
noise included, would score). The floor is the same for every window of an image, so the
excess compares windows of one image; across images it is only indicative, and where the
scaling of the patches differs from the global min-max it can go below 0. Also: the change of
the term over the run's second half in the same unit (how far from converged), the periods
per window of the image's lattices (params.json), and the ARI of the result and of the oracle
map (metrics.json). Standard library only.
"""
import ast
import csv
import json
import math
import pathlib
import struct
import sys


def load_npy(path):
    """The values of a little-endian float32 or float64 NPY file, flattened."""
    data = pathlib.Path(path).read_bytes()
    major = data[6]
    hlen = struct.unpack("<H", data[8:10])[0] if major == 1 else struct.unpack("<I", data[8:12])[0]
    start = (10 if major == 1 else 12) + hlen
    header = ast.literal_eval(data[start - hlen:start].decode("latin1"))
    code = {"<f4": "f", "<f8": "d"}[header["descr"]]
    count = math.prod(header["shape"])
    return struct.unpack(f"<{count}{code}", data[start:start + count * struct.calcsize(code)])


def entropy_floor(path):
    """Mean Bernoulli entropy of the image min-max scaled to [0, 1]."""
    v = load_npy(path)
    lo, hi = min(v), max(v)
    total = 0.0
    for a in v:
        x = (a - lo) / (hi - lo)
        xc = min(max(x, 1e-7), 1 - 1e-7)
        total -= x * math.log(xc) + (1 - x) * math.log(1 - xc)
    return total / len(v)


def main(out):
    out = pathlib.Path(out)
    rows = []
    for run in sorted(out.glob("runs/w*/*")):
        if not (run / "metrics.json").is_file():
            continue
        w = int(run.parent.name[1:])
        img = out / "img" / run.name
        floor = entropy_floor(img / "image.npy")
        hist = list(csv.DictReader(open(run / "history.csv")))
        last = float(hist[-1]["recon"]) / (w * w)
        mid = float(hist[len(hist) // 2]["recon"]) / (w * w)
        periods = json.load(open(img / "params.json"))["params"]["period_px"]
        periods = [float(p) for p in periods.split("/")]
        result = json.load(open(run / "metrics.json"))["result"]
        rows.append((run.name, w, w / max(periods), w / min(periods), last - floor,
                     mid - last, result["score"]["ari"], result["oracle"]["ari"]))
    rows.sort(key=lambda r: (r[0], r[1]))
    print("| image | window px | periods per window | excess nats/px | drop over 2nd half | ARI | oracle ARI |")
    print("|---|---|---|---|---|---|---|")
    for name, w, lo, hi, excess, drop, ari, oracle in rows:
        span = f"{lo:.1f}" if abs(hi - lo) < 0.05 else f"{lo:.1f} to {hi:.1f}"
        print(f"| {name} | {w} | {span} | {excess:.4f} | {drop:.4f} | {ari:.3f} | {oracle:.3f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
