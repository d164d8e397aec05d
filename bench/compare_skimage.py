#!/usr/bin/env python3
"""Times scikit-image (and the phy-VAE authors' SL1/SL2 arithmetic) on the inputs
that `cargo bench -p phyvae-imaging --bench imaging` wrote to target/bench-input,
reads criterion's medians for phyvae from target/criterion, and prints a
markdown table with both and the speed-up. Run through bench/compare.sh, which
runs both sides in one go.

Usage: compare_skimage.py [--repeat N] [--json OUT]
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import skimage
from scipy import fftpack
from skimage import filters
from skimage.restoration import denoise_bilateral
from skimage.segmentation import chan_vese

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
INPUT = os.path.join(ROOT, "target", "bench-input")
CRIT = os.path.join(ROOT, "target", "criterion")


def median_time(fn, repeat, min_time=0.2):
    """Median seconds per call over `repeat` rounds, each at least `min_time` s."""
    fn()  # warm-up
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    inner = max(1, int(min_time / one))
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        rounds.append((time.perf_counter() - t0) / inner)
    return statistics.median(rounds)


def sl1(z_mean):
    d = int(round(np.sqrt(z_mean.shape[0])))
    acc = 0.0
    for k in (2, 3):
        z = z_mean[:, k].reshape(d, d)
        z = (z - z.min()) / (z.max() - z.min())
        acc += np.sum(filters.scharr(denoise_bilateral(z, sigma_color=None, sigma_spatial=5)))
    return acc / 2


def sl2(z_mean):
    d = int(round(np.sqrt(z_mean.shape[0])))
    lo, hi = int(d / 2 - 1), int(d / 2 + 1)
    outs, tots = [], []
    for k in (2, 3):
        F = np.log(np.abs(fftpack.fftshift(fftpack.fft2(z_mean[:, k].reshape(d, d)))) + 1)
        tots.append(F.sum())
        outs.append(F.sum() - F[lo:hi, lo:hi].sum())
    return ((outs[0] + outs[1]) / 2) / ((tots[0] + tots[1]) / 2)


def pipeline(z):
    zn = (z - z.min()) / (z.max() - z.min())
    zd = denoise_bilateral(zn, sigma_color=0.3, sigma_spatial=5)
    a = zd > filters.threshold_otsu(zd)
    b = np.digitize(zd, bins=filters.threshold_multiotsu(zd, classes=3))
    c = np.digitize(zd, bins=filters.threshold_multiotsu(zd, classes=4))
    d = chan_vese(zd)
    return a, b, c, d


def criterion_median(group, name):
    path = os.path.join(CRIT, group, name, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] * 1e-9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    z = np.load(os.path.join(INPUT, "map483.npy"))
    zn = (z - z.min()) / (z.max() - z.min())
    den = denoise_bilateral(zn, sigma_color=0.3, sigma_spatial=5)
    rows = [
        ("map483", "bilateral_skimage", "bilateral 483x483 (sigma_color 0.3, sigma_spatial 5), scikit-image mode",
         lambda: denoise_bilateral(zn, sigma_color=0.3, sigma_spatial=5)),
        ("map483", "bilateral_gaussian", "bilateral 483x483, textbook Gaussian mode (vs the same scikit-image call)",
         lambda: denoise_bilateral(zn, sigma_color=0.3, sigma_spatial=5)),
        ("map483", "scharr", "Scharr 483x483", lambda: filters.scharr(den)),
        ("map483", "otsu", "Otsu 483x483", lambda: filters.threshold_otsu(den)),
        ("map483", "multiotsu3", "multi-Otsu 3 classes 483x483", lambda: filters.threshold_multiotsu(den, classes=3)),
        ("map483", "multiotsu4", "multi-Otsu 4 classes 483x483", lambda: filters.threshold_multiotsu(den, classes=4)),
        ("map483", "chan_vese", "Chan-Vese 483x483 (defaults)", lambda: chan_vese(den)),
        ("map483", "pipeline", "full visualisation pipeline 483x483 (min-max, bilateral, Otsu, multi-Otsu 3+4, Chan-Vese)",
         lambda: pipeline(z)),
    ]
    for d in (8, 10):
        zm = np.load(os.path.join(INPUT, f"zmean{d}.npy"))
        rows.append(("physics", f"sl1_{d}x{d}", f"SL1 on a {d}x{d} batch (2 maps)", lambda zm=zm: sl1(zm)))
        rows.append(("physics", f"sl2_{d}x{d}", f"SL2 on a {d}x{d} batch (2 maps)", lambda zm=zm: sl2(zm)))

    out = []
    print(f"scikit-image {skimage.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print()
    print("| what | scikit-image | phyvae | speed-up |")
    print("|---|---|---|---|")
    for group, name, label, fn in rows:
        t_py = median_time(fn, args.repeat)
        t_rs = criterion_median(group, name)
        out.append(dict(name=f"{group}/{name}", label=label, skimage_s=t_py, phyvae_s=t_rs, speedup=t_py / t_rs))
        print(f"| {label} | {fmt(t_py)} | {fmt(t_rs)} | {t_py / t_rs:.1f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def fmt(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"


if __name__ == "__main__":
    main()
