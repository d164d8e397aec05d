#!/usr/bin/env bash
# Downloads real microscopy files in the formats phyvae reads (DigitalMicrograph
# DM3/DM4, TIA SER/EMI, Velox and Berkeley EMD, hyperspy HDF5) from public
# packages on PyPI into a cache, for the format tests. The files are GPL-3.0
# (hyperspy 1.6.5's test data, temul-toolkit 0.1.9's example data), so they are
# never copied into this repository; they live only in the cache.
#
# Usage: scripts/fetch-format-samples.sh [CACHE_DIR]
#   CACHE_DIR defaults to $PHYVAE_SAMPLES or target/format-samples.
# Prints the folder holding the files (CACHE_DIR/files) on stdout.
# Exit codes: 0 ready; 3 PyPI unreachable (tests say so and skip); 1 other failure
# (a download that does not match its recorded SHA-256, a missing tool).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${1:-${PHYVAE_SAMPLES:-target/format-samples}}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
files="$cache/files"
# Tests call this script concurrently: one fetches, the others wait for it.
exec 9>"$cache/.lock"
flock 9
if [ -f "$cache/ready-v1" ]; then
    echo "$files"
    exit 0
fi

# name, file, sha256
packages=(
    "hyperspy==1.6.5 hyperspy-1.6.5.tar.gz 040d21c40e609d6c4b7b2c9e283a5ccf398450f5996a1dc2442d29e44e03793a sdist"
    "temul-toolkit==0.1.9 temul_toolkit-0.1.9-py3-none-any.whl 570bf69a4daf73d182829ca9eb9e1b3cfc0da2cdebdce8a701081d56ca6d7ad5 wheel"
    "atomap==0.4.2 atomap-0.4.2-py3-none-any.whl 646784ff74e23d07cd6e1acbe831cbaafb725af28197688be50f65bce1e39313 wheel"
)
dl="$cache/download"
mkdir -p "$dl"
for entry in "${packages[@]}"; do
    read -r spec file sha kind <<<"$entry"
    if [ ! -f "$dl/$file" ]; then
        extra=()
        if [ "$kind" = sdist ]; then extra=(--no-binary :all:); fi
        if ! python3 -m pip download --quiet --no-deps "${extra[@]}" "$spec" -d "$dl" >&2; then
            if ! python3 -m pip download --quiet --no-deps pip -d "$dl/probe" >/dev/null 2>&1; then
                echo "PyPI is unreachable: cannot download $spec" >&2
                exit 3
            fi
            echo "download of $spec failed" >&2
            exit 1
        fi
    fi
    echo "$sha  $dl/$file" | sha256sum --check --quiet - >&2 || {
        echo "$file does not match its recorded SHA-256" >&2
        exit 1
    }
done

rm -rf "$files"
mkdir -p "$files"
io=hyperspy-1.6.5/hyperspy/tests/io
tar -xzf "$dl/hyperspy-1.6.5.tar.gz" -C "$cache" \
    "$io/dm3_2D_data" "$io/dm4_2D_data" "$io/dm3_1D_data" "$io/dm3_3D_data" "$io/dm4_3D_data" \
    "$io/FEI_new" "$io/FEI_old" "$io/emd_files" "$io/hdf5_files"
mv "$cache/$io"/* "$files/"
rm -rf "$cache/hyperspy-1.6.5"
(cd "$files/emd_files" && python3 -m zipfile -e fei_emd_files.zip fei_velox)
python3 -m zipfile -e "$dl/temul_toolkit-0.1.9-py3-none-any.whl" "$cache/temul"
mkdir -p "$files/temul"
mv "$cache/temul/temul/example_data/experimental/"* "$files/temul/"
mv "$cache/temul/temul/example_data/structures/example_Cu_nanoparticle_sim.hspy" "$files/temul/"
rm -rf "$cache/temul"
python3 -m zipfile -e "$dl/atomap-0.4.2-py3-none-any.whl" "$cache/atomap"
mkdir -p "$files/atomap"
mv "$cache/atomap/atomap/tests/datasets/"*.hdf5 "$cache/atomap/atomap/example_data/"*.hspy "$files/atomap/"
rm -rf "$cache/atomap"
touch "$cache/ready-v1"
echo "$files"
