import io
import re

import pytest

from aekit import Autoencoder
from aekit.training.progress import ProgressBar, StopOnSignal, format_seconds
from tests.helpers import FAST


def test_plain_lines_when_not_a_terminal(digits):
    out = io.StringIO()
    Autoencoder(code_dim=2, hidden=(16,), **{**FAST, "epochs": 3}).fit(
        digits[:300], callbacks=(ProgressBar(out),)
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "training on 250 rows (50 for validation), up to 3 epochs, on cpu"
    assert len(lines) == 4
    pattern = r"epoch (\d)/3  train [\d.e-]+  val [\d.e-]+  [\d,]+ samples/s  ETA ≤ \d+s"
    assert [re.fullmatch(pattern, line).group(1) for line in lines[1:]] == ["1", "2", "3"]
    assert lines[-1].endswith("ETA ≤ 0s")


def test_bar_shows_loss_rate_and_eta(digits):
    out = io.StringIO()
    Autoencoder(code_dim=2, hidden=(16,), **{**FAST, "epochs": 2}).fit(
        digits[:300], callbacks=(ProgressBar(out, bar=True),)
    )
    text = out.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "row/s" in text and "loss " in text and "ETA ≤ " in text
    assert ", val " in text  # the second epoch shows the first one's validation loss


def test_stop_on_signal_raises_between_steps(digits):
    stopper = StopOnSignal()
    stopper.request()
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(digits[:100], callbacks=(stopper,))
    with pytest.raises(KeyboardInterrupt):
        stopper.request()  # a second Ctrl-C does not wait


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(9.4, "9s"), (75, "1m15s"), (3725, "1h02m"), (-3, "0s"), (float("nan"), "?")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
