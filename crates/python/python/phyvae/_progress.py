"""The progress bar of a training: tqdm when it is installed (a widget in
Jupyter, a bar in a terminal), else a plain text bar on stderr (redrawn at
most twice a second on a terminal; one line per epoch when stderr is a file
or a pipe)."""

from __future__ import annotations

import sys
import time
import warnings


class TrainBar:
    """Shows a training's batches; called with the native module's progress."""

    def __init__(self, what: str = "training"):
        self._what = what
        self._bar = None
        self._plain = None
        self._total = 0
        self._shown = 0
        self._finishing = False
        self._epoch = 0
        self._drawn_at = 0.0

    def _open(self, total: int) -> None:
        self._total = total
        try:
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
            return
        self._plain_draw(done, epoch, epochs, trained, status)

    def _plain_draw(self, done, epoch, epochs, trained, status) -> None:
        if not sys.stderr.isatty():
            # A log: one line when an epoch starts and when training ends.
            if trained and not self._finishing:
                self._finishing = True
                sys.stderr.write(f"{self._what}: {epochs} epochs done; {status}\n")
            elif not trained and epoch != self._epoch:
                self._epoch = epoch
                sys.stderr.write(f"{self._what}: {status}\n")
            sys.stderr.flush()
            return
        now = time.monotonic()
        if not trained and now - self._drawn_at < 0.5:
            return
        self._drawn_at = now
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
        elif self._plain and sys.stderr.isatty():
            sys.stderr.write("\n")
            sys.stderr.flush()
