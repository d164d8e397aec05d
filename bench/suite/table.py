"""Table of a benchmark-suite folder written by bench/suite/run.sh.

Usage: python3 bench/suite/table.py OUT_DIR [--markdown]

Reads OUT_DIR/runs/<model>/<family>-<seed>/metrics.json (plus exit_code and wall_seconds
written by run.sh) and OUT_DIR/img/<family>-<seed>/params.json. Prints one row per family
and model, a second row "(delta >= 1 px)" for domains-180 and domains-90 restricted to the
images with delta_px >= 1 when that changes the set of images, and a summary per model of
the families that meet the goals. The same data goes to OUT_DIR/table.json.

The table is markdown in both cases; by default its columns are padded for reading in a
terminal, with --markdown it is printed compact (one line per row, no padding) for pasting
into a document.
"""
import json
import math
import pathlib
import statistics
import sys

FAMILIES = [
    "period",
    "motif",
    "grain-boundary",
    "precipitate",
    "three-phase",
    "domains-180",
    "domains-90",
    "antiphase",
]
MODELS = ["sh", "sl1", "sl2", "fft"]
MODEL_NAMES = {"sh": "sh-VAE", "sl1": "phy-VAE SL1", "sl2": "phy-VAE SL2", "fft": "FFT baseline"}
DELTA_FAMILIES = ("domains-180", "domains-90")
DELTA_MIN = 1.0
# Goals: phase families (kind "phases") need median and worst pick ARI; domains-180 and
# domains-90 are judged on their images with delta_px >= 1 by the median pick ARI only.
PHASE_MEDIAN, PHASE_WORST = 0.9, 0.8
DOMAIN_MEDIAN = 0.8

COLUMNS = [
    ("family", "family"),
    ("model", "model"),
    ("n", "n"),
    ("ari_median", "ARI median"),
    ("ari_worst", "ARI worst"),
    ("oracle_median", "oracle median"),
    ("oracle_worst", "oracle worst"),
    ("bf1_median", "boundary F1 median"),
    ("psi_median", "Psi (SL1) median"),
    ("with_findings", "with findings"),
    ("failed", "failed"),
    ("seconds_median", "seconds median"),
]


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_number(path):
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def family_seed(name):
    family, _, seed = name.rpartition("-")
    return family, seed


def load_images(root):
    images = {}
    for params in sorted((root / "img").glob("*/params.json")):
        p = read_json(params)
        if p is None:
            continue
        delta = None
        try:
            delta = float(p.get("params", {}).get("delta_px"))
        except (TypeError, ValueError):
            pass
        images[params.parent.name] = {"family": p.get("family"), "kind": p.get("kind"), "seed": p.get("seed"), "delta_px": delta}
    return images


def load_run(run):
    """One run's numbers, or None when it has not finished (no metrics.json, no exit code)."""
    exit_code = read_number(run / "exit_code")
    metrics = read_json(run / "metrics.json")
    if metrics is None and exit_code is None:
        return None
    failed = (exit_code is not None and exit_code != 0) or metrics is None
    wall = read_number(run / "wall_seconds")
    seconds = wall if wall is not None else num((metrics or {}).get("seconds"))
    row = {
        "failed": failed,
        "exit_code": None if exit_code is None else int(exit_code),
        "ari": 0.0,
        "oracle": 0.0,
        "bf1": 0.0,
        "psi": None,
        "map": None,
        "findings": [],
        "seconds": seconds,
    }
    if failed:
        return row
    result = metrics.get("result") or {}
    score = result.get("score") or {}
    oracle = result.get("oracle") or {}
    name = result.get("map")
    row["map"] = name
    if name is not None:
        row["ari"] = num(score.get("ari")) or 0.0
        row["bf1"] = num(score.get("boundary_f1")) or 0.0
        row["psi"] = num(((metrics.get("maps") or {}).get(name) or {}).get("sl1"))
    row["oracle"] = num(oracle.get("ari")) or 0.0
    row["findings"] = [f.get("kind", "?") for f in (metrics.get("diagnosis") or {}).get("findings", [])]
    return row


def summarise(family, model, label, runs):
    def med(key):
        v = [r[key] for r in runs if r[key] is not None]
        return statistics.median(v) if v else None

    def worst(key):
        v = [r[key] for r in runs if r[key] is not None]
        return min(v) if v else None

    return {
        "family": family,
        "label": label,
        "model": model,
        "n": len(runs),
        "ari_median": med("ari"),
        "ari_worst": worst("ari"),
        "oracle_median": med("oracle"),
        "oracle_worst": worst("oracle"),
        "bf1_median": med("bf1"),
        "psi_median": med("psi"),
        "with_findings": sum(1 for r in runs if r["findings"]),
        "failed": sum(1 for r in runs if r["failed"]),
        "seconds_median": med("seconds"),
        "images": sorted(r["image"] for r in runs),
    }


def cell(key, value):
    if value is None:
        return "-"
    if key == "psi_median":
        return f"{value:.3g}"
    if key == "seconds_median":
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def print_table(rows, compact):
    header = [title for _, title in COLUMNS]
    body = []
    for r in rows:
        line = []
        for key, _ in COLUMNS:
            if key == "family":
                line.append(r["label"])
            elif key == "model":
                line.append(MODEL_NAMES.get(r["model"], r["model"]))
            else:
                line.append(cell(key, r[key]))
        body.append(line)
    if compact:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for line in body:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(x[i]) for x in [header] + body) for i in range(len(header))]
    left = {0, 1}

    def fmt(line):
        return "| " + " | ".join(x.ljust(w) if i in left else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths))) + " |"

    print(fmt(header))
    print("|" + "|".join(("-" * (w + 2)) if i in left else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|")
    for line in body:
        print(fmt(line))


def goals(runs, images, models):
    kind = {}
    for info in images.values():
        kind.setdefault(info["family"], info["kind"])
    out = {}
    for model in models:
        met, missed, unjudged, no_goal = [], [], [], []
        for family in sorted({f for f, m in runs if m == model}, key=order_key):
            mine = runs[(family, model)]
            if family in DELTA_FAMILIES:
                big = [r["ari"] for r in mine if (images.get(r["image"], {}).get("delta_px") or 0) >= DELTA_MIN]
                if not big:
                    unjudged.append(f"{family} (no image with delta >= {DELTA_MIN:g} px)")
                    continue
                median = statistics.median(big)
                text = f"{family} (delta >= {DELTA_MIN:g} px: median {median:.3f}, n {len(big)})"
                (met if median >= DOMAIN_MEDIAN else missed).append(text)
            elif kind.get(family) == "phases":
                aris = [r["ari"] for r in mine]
                median, worst = statistics.median(aris), min(aris)
                text = f"{family} (median {median:.3f}, worst {worst:.3f})"
                (met if median >= PHASE_MEDIAN and worst >= PHASE_WORST else missed).append(text)
            else:
                no_goal.append(family)
        out[model] = {"met": met, "missed": missed, "not_judged": unjudged, "no_goal": no_goal}
    return out


def order_key(family):
    return (FAMILIES.index(family) if family in FAMILIES else len(FAMILIES), family)


def model_key(model):
    return (MODELS.index(model) if model in MODELS else len(MODELS), model)


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = [a for a in argv if a.startswith("--")]
    if len(args) != 1 or any(f != "--markdown" for f in flags):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    compact = "--markdown" in flags
    root = pathlib.Path(args[0])
    images = load_images(root)

    runs = {}
    unfinished = []
    for model_dir in sorted((root / "runs").glob("*")):
        if not model_dir.is_dir():
            continue
        for run in sorted(model_dir.glob("*")):
            if not run.is_dir():
                continue
            row = load_run(run)
            if row is None:
                unfinished.append(f"{model_dir.name}/{run.name}")
                continue
            family, _ = family_seed(run.name)
            row["image"] = run.name
            runs.setdefault((family, model_dir.name), []).append(row)

    rows = []
    for family, model in sorted(runs, key=lambda k: (order_key(k[0]), model_key(k[1]))):
        mine = runs[(family, model)]
        rows.append(summarise(family, model, family, mine))
        if family in DELTA_FAMILIES:
            big = [r for r in mine if (images.get(r["image"], {}).get("delta_px") or 0) >= DELTA_MIN]
            if len(big) != len(mine):
                rows.append(summarise(family, model, f"{family} (delta >= {DELTA_MIN:g} px)", big))

    if not rows:
        print(f"no finished runs under {root}/runs", file=sys.stderr)
    else:
        print_table(rows, compact)
    models = sorted({r["model"] for r in rows}, key=model_key)
    summary = goals(runs, images, models)
    print()
    print(
        f"Goals: phase families median ARI >= {PHASE_MEDIAN} and worst >= {PHASE_WORST}; "
        f"{' and '.join(DELTA_FAMILIES)} with delta >= {DELTA_MIN:g} px median ARI >= {DOMAIN_MEDIAN}."
    )
    for model in models:
        s = summary[model]
        judged = len(s["met"]) + len(s["missed"])
        print()
        print(f"{MODEL_NAMES.get(model, model)}: {len(s['met'])} of {judged} families meet the goals")
        print(f"- met: {', '.join(s['met']) or 'none'}")
        print(f"- missed: {', '.join(s['missed']) or 'none'}")
        if s["not_judged"]:
            print(f"- not judged: {', '.join(s['not_judged'])}")
        if s["no_goal"]:
            print(f"- no goal: {', '.join(s['no_goal'])}")
    if unfinished:
        print()
        print(f"Unfinished runs (left out): {', '.join(unfinished)}")

    detail = {
        f"{model}/{r['image']}": {k: v for k, v in r.items() if k != "image"}
        for (family, model), mine in runs.items()
        for r in mine
    }
    (root / "table.json").write_text(
        json.dumps(
            {
                "goals": {
                    "phase_median": PHASE_MEDIAN,
                    "phase_worst": PHASE_WORST,
                    "domain_median": DOMAIN_MEDIAN,
                    "delta_min_px": DELTA_MIN,
                },
                "rows": rows,
                "summary": summary,
                "runs": dict(sorted(detail.items())),
                "images": images,
                "unfinished": unfinished,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
