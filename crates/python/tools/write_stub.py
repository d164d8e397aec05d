"""Writes python/phyvae/__init__.pyi: the hand-written stub of the package
with ``train``'s keywords generated from the settings of ``phyvae train``.
Run it (with the package built and installed) when the command's settings
change; tests/test_train.py checks that the stub lists every setting."""

from pathlib import Path

import phyvae

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "stub_template.pyi"
STUB = HERE.parent / "python" / "phyvae" / "__init__.pyi"

TYPES = {"frame": "Optional[int]", "dataset": "Optional[str]"}


def kind(s) -> str:
    if s.is_flag:
        return "bool"
    if s.name in TYPES:
        return TYPES[s.name]
    if s.name in ("truth", "config"):
        return "Union[str, os.PathLike, np.ndarray, None]" if s.name == "truth" else "Union[str, os.PathLike, None]"
    if s.name == "latents":
        return "Union[str, Sequence[str], None]"
    if s.name == "beta":
        return "Union[float, str, Tuple[float, ...], None]"
    if s.choices:
        return "Optional[str]"
    if s.name in ("lr", "weight", "add_lambda", "range_floor", "shift_prior", "lowpass"):
        return "Optional[float]"
    if s.name == "device":
        return "str"
    return "Optional[int]"


def main() -> None:
    lines = []
    for s in phyvae.SETTINGS:
        default = "False" if s.is_flag else (repr(s.default) if s.default is not None else "None")
        lines.append(f"    {s.name}: {kind(s)} = {default},")
    text = TEMPLATE.read_text().replace("    # SETTINGS\n", "\n".join(lines) + "\n")
    STUB.write_text(text)


if __name__ == "__main__":
    main()
