"""External series: tolerant cleaning of published monthly figures, growth, statements, CLI."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.errors import InputError
from monitor.series import clean_monthly, growth, parse_months, parse_value, statements


def _customs_like():
    """A table shaped like published customs figures (built here, not copied)."""
    return pd.DataFrame({
        "month": ["2023-01..03", "2023-04", "2023-05", "2023-06", "2023-07", "2023-12"],
        "usd_m": ["~300", "120", "110.5", "~100", "1,050", "~200-230"],
        "status": ["derived (Q1 minus)", "reported", "reported", "derived", "reported", "derived rough"],
    })


def test_parse_helpers():
    assert parse_value("~437") == (437.0, True)
    assert parse_value("~200-230") == (215.0, True)
    assert parse_value("1,240") == (1240.0, False)
    assert parse_months("2023-01..03")[-1] == pd.Timestamp("2023-03-01", tz="UTC")
    assert len(parse_months("2022-11..2023-02")) == 4
    with pytest.raises(InputError, match="not a month"):
        parse_months("spring")


def test_clean_monthly_spreads_ranges_and_marks_derived():
    c = clean_monthly(_customs_like())
    assert list(c["time"].dt.month) == [1, 2, 3, 4, 5, 6, 7, 12]
    assert c["value"].iloc[:3].tolist() == [100.0, 100.0, 100.0]
    assert c["value"].iloc[-1] == 215.0 and c["value"].iloc[6] == 1050.0
    assert c["status"].tolist() == ["derived"] * 3 + ["reported", "reported", "derived", "reported", "derived"]


def test_growth_and_ytd():
    g = growth(clean_monthly(_customs_like()))
    assert g.loc[3, "mom_pct"] == pytest.approx(20.0)
    assert pd.isna(g.loc[7, "mom_pct"])  # November missing
    assert g.loc[4, "ytd"] == pytest.approx(300 + 120 + 110.5) and g.loc[4, "ytd_months"] == 5
    two = pd.DataFrame({"time": pd.date_range("2022-01-01", periods=24, freq="MS", tz="UTC"),
                        "value": [100.0] * 12 + [150.0] * 12})
    assert growth(two)["yoy_pct"].iloc[12:].tolist() == [50.0] * 12


def test_statements_fastest_growth_and_spike():
    vals = [100, 102, 101, 103, 102, 104, 103, 105, 104, 103, 105, 104, 140, 106]
    s = pd.DataFrame({"time": pd.date_range("2022-01-01", periods=len(vals), freq="MS", tz="UTC"),
                      "value": [float(v) for v in vals]})
    st = statements(s, name="exports", unit="USD m")
    assert any("2023-01" in x and "fastest growth since the series began (2022-02)" in x for x in st)
    assert any("2023-01" in x and "unusually high" in x for x in st)
    assert not any("2022-" in x.split(" in ")[1][:5] for x in st)


def test_cli_import_and_show(tmp_path):
    csv = tmp_path / "customs.csv"
    _customs_like().to_csv(csv, index=False)
    db = str(tmp_path / "m.db")
    r = CliRunner().invoke(app, ["series", "import", str(csv), "--name", "cn", "--unit", "USD m", "--store", db])
    assert r.exit_code == 0 and "8 months imported (5 derived)" in r.output
    r = CliRunner().invoke(app, ["series", "show", "cn", "--store", db])
    assert r.exit_code == 0 and "2023-04" in r.output and "+20.0" in r.output and "USD m" in r.output
    r = CliRunner().invoke(app, ["series", "show", "cn", "--json", "--store", db])
    assert r.exit_code == 0 and '"ytd"' in r.output
    r = CliRunner().invoke(app, ["series", "show", "zz", "--store", db])
    assert r.exit_code == 2 and "zz: no series" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("month,value\nspring,3\n")
    r = CliRunner().invoke(app, ["series", "import", str(bad), "--name", "b", "--store", db])
    assert r.exit_code == 2 and "row 2" in r.output


def test_real_customs_file_when_present():
    from pathlib import Path

    p = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference" / "china_exports_to_dprk_2023.csv"
    if not p.exists():
        pytest.skip(f"{p} absent")
    c = clean_monthly(p)
    assert len(c) == 12 and c["value"].sum() == pytest.approx(2012.2, abs=1)
