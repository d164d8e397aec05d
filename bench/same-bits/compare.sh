#!/usr/bin/env bash
# compare.sh DIR1 DIR2: every file of two recordings byte-identical, except
# timings (metrics.json compared as JSON without its seconds and paths; the
# seconds column of history.csv; the checkpoint, which stores the history)
# and the report (HTML and PNG).
set -uo pipefail
A=$1; B=$2; bad=0
for f in $(cd "$A" && find . -type f ! -name '*.html' ! -name "*.png" ! -name checkpoint.safetensors ! -name .phyvae.lock | sort); do
  case "$f" in
    */metrics.json) python3 - "$A/$f" "$B/$f" <<'PY' || bad=1
import json,sys
def strip(o):
    if isinstance(o,dict): return {k:strip(v) for k,v in o.items() if v is not None and k not in ("seconds","training_seconds","patches_per_second","command","report","input") and not k.endswith("seconds")}
    if isinstance(o,list): return [strip(v) for v in o]
    return o
a,b=[strip(json.load(open(p))) for p in sys.argv[1:]]
if a!=b: print("DIFF", sys.argv[1]); sys.exit(1)
PY
    ;;
    */history.csv) cmp -s <(cut -d, -f1-7 "$A/$f") <(cut -d, -f1-7 "$B/$f") || { echo "DIFF $f"; bad=1; } ;;
    *) cmp -s "$A/$f" "$B/$f" || { echo "DIFF $f"; bad=1; } ;;
  esac
done
echo "compared $(cd "$A" && find . -type f ! -name '*.html' ! -name '*.png' | wc -l) files; bad=$bad"
