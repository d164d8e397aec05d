#!/usr/bin/env python
"""Tables of bench/train_compare.sh from its work folder.

Reference: patches/s = 64 / median seconds per step of bench_step.py (bench/python-reference).
phyvae: patches_per_second of metrics.json, one epoch of 3 481 patches.
Usage: python bench/train_compare_table.py WORK_FOLDER ROUNDS"""
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
B = 64
rows = [  # label, reference key, phyvae run
    ("sh-VAE", "shvae", "shvae"),
    ("phy-VAE SL1, faithful", "sl1", "sl1-faithful"),
    ("phy-VAE SL2, faithful", "sl2", "sl2-faithful"),
    ("phy-VAE SL1, gradient (reference: its only SL1)", "sl1", "sl1-gradient"),
    ("phy-VAE SL2, gradient (reference: its only SL2)", "sl2", "sl2-gradient"),
]
ref, phy = {}, {}
for r in range(1, rounds + 1):
    d = f"{work}/round{r}"
    j = json.load(open(f"{d}/py/runs/bench_step.json"))
    for _, k, m in rows:
        ref.setdefault(k, []).append(B / j[k]["median_s"])
        phy.setdefault(m, []).append(json.load(open(f"{d}/{m}/metrics.json"))["patches_per_second"])
med = statistics.median
print()
print(f"Training throughput, patches/s (B = 64, 48 x 48; median over {rounds} round(s))")
print()
print("| mode | reference | phyvae | phyvae / reference |")
print("|---|---|---|---|")
for label, k, m in rows:
    a, b = med(ref[k]), med(phy[m])
    print(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
print()
print("Per round (reference s/step from bench_step.py; phyvae epoch s from metrics.json):")
print()
print("| round | mode | reference s/step (median) | (fastest) | reference patches/s | phyvae epoch s | phyvae patches/s | load before phyvae |")
print("|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    d = f"{work}/round{r}"
    j = json.load(open(f"{d}/py/runs/bench_step.json"))
    for label, k, m in rows:
        mj = json.load(open(f"{d}/{m}/metrics.json"))
        load = open(f"{d}/load_before_{m}").read().strip()
        print(f"| {r} | {label} | {j[k]['median_s']:.3f} | {j[k]['min_s']:.3f} | {B / j[k]['median_s']:.1f} | "
              f"{mj['training_seconds']:.1f} | {mj['patches_per_second']:.1f} | {load} |")
    print(f"| {r} | reference load average at end of bench_step.py | {' '.join(f'{x:.2f}' for x in j['loadavg'])} | | | | | |")
