"""Tables of bench/learning_table.sh: one row per image and run, from each run's metrics.json."""
import json
import pathlib
import statistics
import sys

CONTENT = ("z1", "z2")


def best(maps, names):
    scored = [
        (s["ari"], name, method)
        for name in names
        if name in maps
        for method, s in maps[name].get("scores", {}).items()
    ]
    return max(scored) if scored else (float("nan"), "-", "-")


def main(root):
    root = pathlib.Path(root)
    print("| image | run | seed | best content ARI (map, method) | best ARI any map | SL1 z1 | SL1 z2 | final recon | patches/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for metrics in sorted(root.glob("*/*/seed*/metrics.json")):
        seed_dir = metrics.parent
        run, image = seed_dir.parent.name, seed_dir.parent.parent.name
        m = json.loads(metrics.read_text())
        maps = m["maps"]
        c = best(maps, CONTENT)
        a = best(maps, maps.keys())
        sl1 = [maps[z]["sl1"] for z in CONTENT if z in maps]
        print(
            f"| {image} | {run} | {seed_dir.name[4:]} | {c[0]:.3f} ({c[1]}, {c[2]}) | {a[0]:.3f} ({a[1]}) "
            f"| {sl1[0]:.1f} | {sl1[1]:.1f} | {m['final']['recon']:.2f} | {m['patches_per_second']:.0f} |"
        )
        summary.setdefault((image, run), []).append(c[0])
    if any(len(v) > 1 for v in summary.values()):
        print()
        print("| image | run | median best content ARI | seeds |")
        print("|---|---|---|---|")
        for (image, run), v in sorted(summary.items()):
            print(f"| {image} | {run} | {statistics.median(v):.3f} | {len(v)} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench-learning/runs")
