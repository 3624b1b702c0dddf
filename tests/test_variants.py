import json
import subprocess
import sys

import pytest

from slimedge import variants

# The spec's table (slim-variants.md), m = 28, n = 100, and its closed forms.
SPEC_PARAMS_28_100 = {
    "LSTM0": 51_600, "LSTM1": 43_200, "LSTM2": 42_900, "LSTM3": 13_200, "LSTM4": 13_200,
    "LSTM5": 13_500, "LSTM4a": 13_000, "LSTM5a": 13_100, "LSTM6": 12_900, "LSTM10": 3_300,
    "LSTM11": 3_600, "LSTM_C6": 3_000,
}
CLOSED_FORM = {
    "LSTM0": lambda m, n: 4 * m * n + 4 * n * n + 4 * n,
    "LSTM1": lambda m, n: m * n + 4 * n * n + 4 * n,
    "LSTM2": lambda m, n: m * n + 4 * n * n + n,
    "LSTM3": lambda m, n: m * n + n * n + 4 * n,
    "LSTM4": lambda m, n: m * n + n * n + 4 * n,
    "LSTM5": lambda m, n: m * n + n * n + 7 * n,
    "LSTM4a": lambda m, n: m * n + n * n + 2 * n,
    "LSTM5a": lambda m, n: m * n + n * n + 3 * n,
    "LSTM6": lambda m, n: m * n + n * n + n,
    "LSTM10": lambda m, n: m * n + 5 * n,
    "LSTM11": lambda m, n: m * n + 8 * n,
    "LSTM_C6": lambda m, n: m * n + 2 * n,
}
# The spec's "work per step": matrix MACs plus the point-wise u⊙h terms in parentheses.
CLOSED_MACS = {
    "LSTM0": lambda m, n: 4 * m * n + 4 * n * n,
    "LSTM1": lambda m, n: m * n + 4 * n * n, "LSTM2": lambda m, n: m * n + 4 * n * n,
    "LSTM3": lambda m, n: m * n + n * n, "LSTM6": lambda m, n: m * n + n * n,
    "LSTM4": lambda m, n: m * n + n * n + 3 * n, "LSTM5": lambda m, n: m * n + n * n + 3 * n,
    "LSTM4a": lambda m, n: m * n + n * n + n, "LSTM5a": lambda m, n: m * n + n * n + n,
    "LSTM10": lambda m, n: m * n + 4 * n, "LSTM11": lambda m, n: m * n + 4 * n,
    "LSTM_C6": lambda m, n: m * n + n,
}


def test_catalogue_is_the_twelve_variants():
    assert list(variants.VARIANTS) == list(SPEC_PARAMS_28_100)


@pytest.mark.parametrize("name", list(SPEC_PARAMS_28_100))
def test_param_counts_match_spec(name):
    spec = variants.get(name)
    assert spec.num_params(28, 100) == SPEC_PARAMS_28_100[name]
    for m, n in [(1, 1), (13, 64), (64, 512), (5, 3)]:
        assert spec.num_params(m, n) == CLOSED_FORM[name](m, n)
        assert spec.macs_per_step(m, n) == CLOSED_MACS[name](m, n)


@pytest.mark.parametrize("alias,canonical", [
    ("lstm", "LSTM0"), ("STD", "LSTM0"), ("LSTM_6", "LSTM6"), ("lstm6", "LSTM6"),
    ("c6", "LSTM_C6"), ("lstm_c6", "LSTM_C6"), ("Lstm4A", "LSTM4a"), (" lstm10 ", "LSTM10"),
])
def test_aliases_case_insensitive(alias, canonical):
    assert variants.get(alias).name == canonical


@pytest.mark.parametrize("bad", ["LSTM7", "LSTM8", "LSTM9", "gru", ""])
def test_unknown_variant_lists_valid_names(bad):
    with pytest.raises(variants.UnknownVariantError) as e:
        variants.get(bad)
    msg = str(e.value)
    assert repr(bad) in msg
    for name in variants.VARIANTS:
        assert name in msg
    for alias in ("std", "lstm_6", "c6"):
        assert alias in msg


def test_fixed_constants_default_and_configurable():
    assert variants.get("LSTM6").constants == {"i": 1.0, "f": 0.4, "o": 1.0}
    assert variants.get("LSTM4a").constants == {"f": 0.96, "o": 1.0}
    spec = variants.get("LSTM6", constants={"f": 0.7})
    assert spec.constants == {"i": 1.0, "f": 0.7, "o": 1.0}
    assert spec.num_params(28, 100) == 12_900  # constants are not parameters
    with pytest.raises(ValueError, match="not a fixed gate"):
        variants.get("LSTM4a", constants={"i": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        variants.get("LSTM6", constants={"f": 1.5})
    with pytest.raises(ValueError, match="h would always be 0"):
        variants.get("LSTM6", constants={"o": 0.0})
    with pytest.raises(ValueError, match="c would never change"):
        variants.get("LSTM_C6", constants={"i": 0})
    assert variants.get("LSTM6", constants={"f": 0.0}).constants["f"] == 0.0  # c' = i ⊙ c~


def test_c6_harsher_reading_is_an_option():
    spec = variants.get("LSTM_C6", input_only_cell=True)
    assert spec.num_params(28, 100) == 28 * 100 + 100
    assert spec.slot("c").terms == {"W", "b"}
    assert variants.get("c6").num_params(28, 100) == 3_000  # default reading unchanged
    with pytest.raises(ValueError, match="LSTM_C6 only"):
        variants.get("LSTM6", input_only_cell=True)


def test_config_round_trip():
    for spec in [variants.get("LSTM6", constants={"f": 0.55}),
                 variants.get("c6", input_only_cell=True), variants.get("LSTM11")]:
        cfg = json.loads(json.dumps(spec.to_config()))
        assert variants.from_config(cfg) == spec
    assert variants.from_config("lstm_6") == variants.get("LSTM6")


def test_structure_queries():
    lstm6 = variants.get("LSTM6")
    assert lstm6.learned_slots == ("c",)
    assert variants.get("LSTM1").slots_with("W") == ("c",)
    assert variants.get("LSTM0").slots_with("W") == ("i", "f", "o", "c")
    assert variants.get("LSTM10").recurrent_macs_per_step(13, 64) == 4 * 64
    assert variants.get("LSTM10").term_names() == ["W_c", "u_i", "u_f", "u_o", "u_c", "b_c"]


def test_importing_variants_does_not_import_torch():
    code = ("import sys; import slimedge.variants as v; v.table(28, 100); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
