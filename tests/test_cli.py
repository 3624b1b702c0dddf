import json
import subprocess
import sys

from typer.testing import CliRunner

from slimedge.cli import app

runner = CliRunner()


def test_variants_json_gives_spec_counts():
    r = runner.invoke(app, ["variants", "--json", "--input-size", "28", "--hidden-size", "100"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    counts = {row["name"]: row["params"] for row in data["variants"]}
    assert counts == {"LSTM0": 51_600, "LSTM1": 43_200, "LSTM2": 42_900, "LSTM3": 13_200,
                      "LSTM4": 13_200, "LSTM5": 13_500, "LSTM4a": 13_000, "LSTM5a": 13_100,
                      "LSTM6": 12_900, "LSTM10": 3_300, "LSTM11": 3_600, "LSTM_C6": 3_000}
    lstm6 = next(r for r in data["variants"] if r["name"] == "LSTM6")
    assert lstm6["macs_per_step"] == 28 * 100 + 100 * 100
    assert abs(lstm6["params_ratio_to_lstm0"] - 12_900 / 51_600) < 1e-12


def test_variants_table_and_bad_option():
    r = runner.invoke(app, ["variants", "-m", "13", "-n", "64"])
    assert r.exit_code == 0 and "LSTM_C6" in r.stdout
    r = runner.invoke(app, ["variants", "--hidden-size", "0"])
    assert r.exit_code != 0


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "slimedge.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("slimedge ")
