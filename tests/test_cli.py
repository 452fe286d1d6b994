import subprocess
import sys

from aekit.cli import main


def test_demo_prints_ae_and_pca(capsys):
    assert main(["demo", "--code-dims", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "autoencoder" in out and "PCA" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "aekit", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "aekit" in proc.stdout
