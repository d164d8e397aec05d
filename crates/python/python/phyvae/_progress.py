"""The progress bar of a training: tqdm when it is installed (a widget in
Jupyter, a bar in a terminal), else a plain text bar on stderr."""

from __future__ import annotations

import sys


class TrainBar:
    """Shows a training's batches; called with the native module's progress."""

    def __init__(self, what: str = "training"):
        self._what = what
        self._bar = None
        self._plain = None
        self._total = 0
        self._shown = 0
        self._finishing = False

    def _open(self, total: int) -> None:
        self._total = total
        try:
            import warnings

            with warnings.catch_warnings():
                # Without ipywidgets tqdm.auto falls back to its text bar, and says so.
                warnings.simplefilter("ignore")
                from tqdm.auto import tqdm
        except ImportError:
            self._plain = True
            return
        self._bar = tqdm(total=total, desc=self._what, unit="batch", file=sys.stderr, mininterval=0.5)

    def __call__(self, epoch, epochs, batch, batches, loss, trained) -> None:
        if epochs == 0 or batches == 0:
            return
        if self._bar is None and self._plain is None:
            self._open(epochs * batches)
        done = self._total if trained else (epoch - 1) * batches + batch
        status = "encoding, segmenting, report" if trained else f"epoch {epoch}/{epochs} loss {loss:.2f}"
        if self._bar is not None:
            if done > self._shown:
                self._bar.update(done - self._shown)
                self._shown = done
            if trained and not self._finishing:
                self._bar.set_postfix_str(status)
                self._finishing = True
            elif not trained:
                self._bar.set_postfix_str(status, refresh=False)
        else:
            self._shown = done
            width = 30
            filled = int(width * done / max(self._total, 1))
            sys.stderr.write(
                f"\r{self._what} [{'#' * filled}{'.' * (width - filled)}] {done}/{self._total} {status}   "
            )
            sys.stderr.flush()

    def close(self) -> None:
        """Ends the bar (the line is kept)."""
        if self._bar is not None:
            self._bar.close()
        elif self._plain:
            sys.stderr.write("\n")
            sys.stderr.flush()
