"""Rolling windows (``window=rolling``, issue 13 §2).

* the spans of every as_of over seven years (leap days, month and year ends) and every length up to 28 days:
  the tuning span ends where the test span starts, the test span ends at as_of, the two never overlap, and each
  cycle's seeds (tuning, test and the report's replications) differ from the other's and from other cycles';
* the config group: ``window=rolling`` composes to start/end/seed/name computed from as_of (what every consumer
  reads), the study name carries as_of, the fixed windows keep theirs;
* bad input is one line naming the key, through the CLI before anything is written;
* the CLI pins "today" once, as an override;
* the report picks the rolling test span of the sweep's own cycle, and (slow) does so after a smoke-sized sweep.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiment.preflight import CONF_DIR, pin_as_of
from experiment.config import ConfigError, validate
from experiment.report.compose import held_out_window_overrides
from experiment.windows import utc_today
from experiment.windows import (MAX_SPAN_DAYS, SEEDS_PER_DAY, TEST_SEED_OFFSET, cycle_name, cycle_seed,
                                rolling_windows)

ROOT = Path(__file__).resolve().parent.parent
REPORT_REPLICATIONS = 5  # the report's default: test seeds test.seed .. test.seed + 4


def compose_cfg(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def days_of(span) -> set[dt.date]:
    return {span.start + dt.timedelta(days=i) for i in range((span.end - span.start).days)}


# ------------------------------------------------------------------------------------- the pure function
def every_day(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def test_spans_never_overlap_for_every_day_of_seven_years_and_every_length() -> None:
    lengths = [(7, 7), (21, 7), (1, 1), (MAX_SPAN_DAYS, MAX_SPAN_DAYS), (3, 11), (28, 1)]
    checked = 0
    for as_of in every_day(dt.date(2023, 1, 1), dt.date(2029, 12, 31)):  # two leap days, 84 month ends
        for tune_days, test_days in lengths:
            tune, test = rolling_windows(as_of, tune_days, test_days)
            assert test.end == as_of  # the most recent span before as_of; as_of itself is not over yet
            assert tune.end == test.start  # the tuning span is the days right before the test span
            assert (tune.end - tune.start).days == tune.days == tune_days
            assert (test.end - test.start).days == test.days == test_days
            assert not days_of(tune) & days_of(test)
            assert len(days_of(tune) | days_of(test)) == tune_days + test_days
            assert tune.seed != test.seed
            checked += 1
    assert checked == 2557 * len(lengths)


@pytest.mark.parametrize("as_of, tune, test", [
    ("2024-03-01", ("2024-02-16", "2024-02-23"), ("2024-02-23", "2024-03-01")),  # across 29 February
    ("2025-03-01", ("2025-02-15", "2025-02-22"), ("2025-02-22", "2025-03-01")),  # no leap day
    ("2027-01-03", ("2026-12-20", "2026-12-27"), ("2026-12-27", "2027-01-03")),  # test span across New Year
    ("2027-01-10", ("2026-12-27", "2027-01-03"), ("2027-01-03", "2027-01-10")),  # tuning span across it
])
def test_spans_at_month_and_year_boundaries_and_leap_days(as_of: str, tune: tuple, test: tuple) -> None:
    t, h = rolling_windows(as_of)
    assert (t.start.isoformat(), t.end.isoformat()) == tune
    assert (h.start.isoformat(), h.end.isoformat()) == test
    assert (t.name, h.name) == ("rolling", "rolling_test")
    assert cycle_name(as_of) == f"rolling_{as_of}"


def test_seeds_come_from_as_of_and_never_repeat_across_cycles_or_report_replications() -> None:
    seen: dict[int, str] = {}
    for as_of in every_day(dt.date(2025, 1, 1), dt.date(2028, 12, 31)):
        tune, test = rolling_windows(as_of)
        assert rolling_windows(as_of.isoformat()) == (tune, test)  # deterministic: a rerun draws the same days
        assert tune.seed == cycle_seed(as_of) >= 0 and test.seed == tune.seed + TEST_SEED_OFFSET
        for seed in (tune.seed, *range(test.seed, test.seed + REPORT_REPLICATIONS)):
            assert seed not in seen, (as_of, seed, seen.get(seed))
            seen[seed] = str(as_of)
    assert max(seen) < 2 ** 31 and TEST_SEED_OFFSET + REPORT_REPLICATIONS <= SEEDS_PER_DAY


@pytest.mark.parametrize("args", [("notadate", 7, 7), ("2026-02-30", 7, 7), ("2026-1-5", 7, 7),
                                  ("2026-11-30", 0, 7), ("2026-11-30", 7, MAX_SPAN_DAYS + 1),
                                  ("2026-11-30", True, 7), ("1999-12-31", 7, 7)])
def test_the_function_rejects_bad_input(args: tuple) -> None:
    with pytest.raises(ValueError):
        rolling_windows(*args)


# ----------------------------------------------------------------------------------------- the config
def test_window_rolling_composes_the_fields_every_consumer_reads() -> None:
    from experiment.app import sim_params

    tune, test = rolling_windows("2028-03-01", 14, 7)
    for span, expected in (("tune", tune), ("test", test)):
        cfg = compose_cfg("window=rolling", "window.as_of=2028-03-01", "window.tune_days=14", f"window.span={span}")
        validate(cfg)
        w = cfg.window
        assert (w.name, w.start, w.end, w.seed) == (
            expected.name, expected.start.isoformat(), expected.end.isoformat(), expected.seed)
        p = sim_params(cfg)
        assert p.seed == expected.seed and p.n_days == expected.days and p.start_weekday == expected.start.weekday()


def test_study_and_experiment_names_carry_as_of_and_fixed_windows_keep_theirs() -> None:
    from experiment.tracking.common import Settings, default_experiment
    from hydra_plugins.navitune_optuna.validation import STUDY_NAME

    for as_of in ("2026-11-30", "2026-12-28"):
        for span in ("tune", "test"):
            cfg = compose_cfg("window=rolling", f"window.as_of={as_of}", f"window.span={span}", "demand=stats",
                              hydra=True)
            assert cfg.hydra.sweeper.study_name == f"navitune_tokyo_central_rolling_{as_of}_stats"
            assert STUDY_NAME.fullmatch(cfg.hydra.sweeper.study_name)  # also a KFP / MLflow experiment name
            assert default_experiment(cfg, None, Settings.from_cfg(cfg)) == f"navitune_tokyo_central_rolling_{as_of}_stats"
    for window in ("tune_week", "smoke"):
        fixed = compose_cfg(f"window={window}", hydra=True)
        assert fixed.hydra.sweeper.study_name == f"navitune_tokyo_central_{window}_ml"
        assert default_experiment(fixed, None, Settings.from_cfg(fixed)) == f"navitune_tokyo_central_{window}_ml"
        assert "as_of" not in fixed.window and "cycle" not in fixed.window  # the fixed windows are unchanged


def test_as_of_defaults_to_today() -> None:
    before = utc_today()
    cfg = compose_cfg("window=rolling")
    as_of = dt.date.fromisoformat(cfg.window.as_of)
    assert as_of in {before, utc_today()}  # the same day, unless the clock passed midnight meanwhile
    assert cfg.window.end == (as_of - dt.timedelta(days=7)).isoformat()


@pytest.mark.parametrize("override, key", [
    ("window.as_of=notadate", "window.as_of"), ("window.as_of=2026-02-30", "window.as_of"),
    ("window.as_of=20261130", "window.as_of"), ("window.tune_days=0", "window.tune_days"),
    ("window.test_days=29", "window.test_days"), ("window.span=train", "window.span"),
])
def test_bad_rolling_keys_are_one_line_naming_the_key(override: str, key: str) -> None:
    cfg = compose_cfg("window=rolling", override)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    text = str(err.value)
    assert text.startswith(f"navitune: invalid config {key}=") and "\n" not in text and "allowed:" in text


def test_as_of_on_a_fixed_window_is_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match=r"^navitune: invalid config window.as_of='2026-11-30'; allowed: keys name, "):
        validate(compose_cfg("window=tune_week", "+window.as_of=2026-11-30"))


def test_cli_rejects_an_as_of_that_is_not_a_date_before_writing_anything(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "experiment", "window=rolling", "window.as_of=notadate",
         f"paths.outputs={tmp_path / 'outputs'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("navitune: invalid config window.as_of='notadate'; allowed: a date YYYY-MM-DD "
                                   "between 2000-01-01 and 2999-12-31 (default: today)")
    assert list(tmp_path.iterdir()) == []


def test_today_is_the_utc_date_whatever_the_local_time_zone() -> None:
    """The default as_of of the config, and of the CLI's pin is the UTC date (a scheduled cycle's
    date), also where the local date differs: a time zone 12 h away from UTC on the side that makes it differ."""
    utc_hour = dt.datetime.now(dt.timezone.utc).hour
    tz = "Etc/GMT+12" if utc_hour < 12 else "Etc/GMT-12"  # local date: the day before / after UTC's
    code = ("import datetime as dt, json\n"
            "from experiment.registration import register_configs\n"
            "from experiment.preflight import pin_as_of\n"

            "from experiment.windows import utc_today\n"
            "from hydra import compose, initialize_config_dir\n"
            "from experiment.preflight import CONF_DIR\n"
            "register_configs()\n"
            "with initialize_config_dir(config_dir=CONF_DIR, version_base=None):\n"
            "    cfg = compose(config_name='config', overrides=['window=rolling'])\n"
            "print(json.dumps({'local': dt.date.today().isoformat(), 'utc': utc_today().isoformat(),\n"
            "    'config': cfg.window.as_of, 'pin': pin_as_of(['window=rolling', '-m'])[-1]}))\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TZ": tz}, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    days = json.loads(proc.stdout.strip().splitlines()[-1])
    assert days["local"] != days["utc"], days  # the case under test
    assert days["config"] == days["utc"] and days["pin"] == f"window.as_of={days['utc']}", days


def test_the_cli_pins_today_once_as_an_override() -> None:
    before = utc_today().isoformat()
    pinned = pin_as_of(["window=rolling", "-m"])
    assert pinned in (["window=rolling", "-m", f"window.as_of={day}"] for day in {before, utc_today().isoformat()})
    assert pin_as_of(["window=rolling", "window.as_of=2026-01-05"]) == ["window=rolling", "window.as_of=2026-01-05"]
    assert pin_as_of(["window=tune_week"]) == ["window=tune_week"]  # a fixed window has no as_of
    assert pin_as_of(["window=rolling", "--cfg", "job"]) == ["window=rolling", "--cfg", "job"]


# ------------------------------------------------------------------------------------------ the report
def test_the_report_tests_on_the_same_cycles_test_span() -> None:
    rolling = {"name": "rolling", "as_of": "2026-11-30", "tune_days": 14, "test_days": 7}
    expected = ["window=rolling", "window.as_of=2026-11-30", "window.tune_days=14", "window.test_days=7",
                "window.span=test"]
    assert held_out_window_overrides("auto", rolling) == expected
    assert held_out_window_overrides("rolling", rolling) == expected
    assert held_out_window_overrides("auto", {"name": "tune_week"}) == ["window=test_week"]
    assert held_out_window_overrides("test_week", rolling) == ["window=test_week"]  # an explicit choice wins
    assert held_out_window_overrides("smoke", {"name": "tune_week"}) == ["window=smoke"]


@pytest.mark.slow
def test_a_smoke_sized_rolling_sweep_reports_on_its_held_out_test_span(tmp_path: Path) -> None:
    """A rolling sweep at a leap-day as_of with one-day spans and the smoke fleet: the study is the cycle's,
    the end-of-sweep report ran on the cycle's test span (its own seeds, the smoke scale), which is held out."""
    as_of = "2028-03-01"
    proc = subprocess.run(
        [sys.executable, "-m", "experiment", "-m", "window=rolling", f"window.as_of={as_of}", "window.tune_days=1",
         "window.test_days=1", "window.drivers=120", "window.max_shift_h=8", f"paths.outputs={tmp_path / 'outputs'}",
         "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=3",
         "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed", "tracking=off"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "champion/challenger report: tuned vs production on rolling_test" in proc.stdout + proc.stderr
    (sweep,) = sorted((tmp_path / "outputs").glob("sweeps/*/*"))
    check_rolling_report(sweep, as_of)
    # the report's command line on the same sweep directory picks the same test span (report.window=auto)
    (sweep / "report.json").unlink()
    again = subprocess.run([sys.executable, "-m", "experiment.report", str(sweep), "report.replications=2", "report.rule=fixed"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    check_rolling_report(sweep, as_of)


def check_rolling_report(sweep: Path, as_of: str) -> None:
    r = json.loads((sweep / "report.json").read_text())
    tune, test = rolling_windows(as_of, 1, 1)
    assert r["study"] == f"navitune_tokyo_central_rolling_{as_of}_ml"
    assert r["windows"]["tuning"] == {"name": tune.name, "start": "2028-02-28", "end": "2028-02-29",
                                      "seed": tune.seed, "drivers": 120, "max_shift_h": 8.0}
    assert r["windows"]["test"] == {"name": test.name, "start": "2028-02-29", "end": as_of, "drivers": 120,
                                    "max_shift_h": 8.0, "seeds": [test.seed, test.seed + 1],
                                    "matched_to_tuning_scale": True, "held_out": True,
                                    "fleet": 120, "days": 1}  # the scale it measured (the registry's scale guard)
    for p in r["patterns"]:
        assert p["seeds"] == [test.seed, test.seed + 1]
    job = OmegaConf.load(sweep / "0" / ".hydra" / "config.yaml")
    assert job.window.as_of == as_of


def test_a_rolling_config_read_back_from_yaml_validates() -> None:
    """A kfp job gets its config as YAML (no schema types): its rolling window must still validate, and a typo
    in it must still be named."""
    for overrides in (["window=rolling", "window.as_of=2026-06-04"], []):
        loaded = OmegaConf.create(OmegaConf.to_yaml(compose_cfg(*overrides)))
        validate(loaded)
        loaded.window.tune_dayz = 7
        with pytest.raises(ConfigError, match=r"window\.tune_dayz=7; allowed: keys name, start, end"):
            validate(loaded)
