"""The files a report leaves in the sweep directory: report.md, the policy candidate and the plots."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiment.report._util import _fmt, _yen
from experiment.report.settings import CANDIDATE, DEMANDS, REPORT_FILES, REVENUE_PLOT, SETS, ReportSettings
from experiment.study import Sweep, candidate_name, report_paths

log = logging.getLogger("navitune.report")





def write_report(
    sweep: Sweep, settings: ReportSettings, result: dict[str, Any],
    cfgs: dict[tuple[str, str], dict[str, Any]], study: Any,
) -> list[Path]:
    """report.md, the policy candidate and the plots (report.json is written last by the caller)."""
    d = sweep.dir
    for old in report_paths(d):  # a plot skipped this time must not survive from an earlier report
        old.unlink()
    files = [d / "report.json"]
    files.append(_write_candidate(sweep, result, cfgs[("tuned", DEMANDS[0])]["cfg"]))
    if settings.plots:
        from experiment.report.plots import revenue_plot, study_plots

        improvements = {k: {"improvement_pct": result["improvement_pct"][k], "ci95_pct": result["ci95_pct"][k]}
                        for k in DEMANDS}
        files.append(revenue_plot(result["patterns"], improvements, d / REVENUE_PLOT))
        if study is not None:
            written, skipped = study_plots(study, d)
            files += written
            for why in skipped:
                log.info("champion/challenger report: plot skipped: %s", why)
    result["plots"] = [f.name for f in files if f.suffix == ".png"]
    (d / "report.md").write_text(_markdown(result, sweep))
    files.insert(1, d / "report.md")
    return files



def _write_candidate(sweep: Sweep, result: dict[str, Any], cfg: DictConfig) -> Path:
    """The tuned policy as a complete ``conf/policy`` option (every key, not a diff against production, so it
    stays what was tested when production.yaml changes)."""
    name = candidate_name(sweep)
    policy = OmegaConf.to_container(cfg.policy, resolve=True)
    assert isinstance(policy, dict)
    body = OmegaConf.to_yaml(OmegaConf.create({"defaults": ["policy_schema", "_self_"], **policy, "name": name}))
    imp, ci = result["improvement_pct"], result["ci95_pct"]
    lines = [
        f"# Candidate navigation parameters tuned by study {sweep.study_name} (sweep {sweep.dir}).",
        f"# Test window {result['windows']['test']['name']}, {result['replications']} paired replications, "
        "vs production:",
        *(f"#   {d} demand: {imp[d]:+.2f} % (95 % CI {ci[d][0]:+.2f} .. {ci[d][1]:+.2f})" for d in DEMANDS),
        f"# Decision: {result['decision']} ({result['decision_reason']}).",
        f"# Use: cp {sweep.dir / CANDIDATE} conf/policy/{name}.yaml && python -m experiment policy={name}",
        "# (best_policy.yaml holds the same values as a diff against the sweep's policy option: copy this one.)",
    ]
    path = sweep.dir / CANDIDATE
    path.write_text("\n".join(lines) + "\n" + body)
    return path



REGISTRY_LINE = "Registry: "  # the line of report.md that says what the registry did (note_registry)


def baseline_label(sweep_dir: Path, r: dict[str, Any]) -> str:
    """What the tuned parameters were compared with, as people call it: ``the champion v3`` when the sweep
    started from the region's champion (``registry_start.json``), else the baseline policy's name."""
    import json

    try:
        version = json.loads((sweep_dir / "registry_start.json").read_text()).get("champion_version")
    except (OSError, ValueError, AttributeError):
        version = None
    if version is not None:
        return f"the champion v{version}"
    base = next((p["policy"] for p in r["patterns"] if p["set"] == "production"), "production")
    match = re.fullmatch(r"champion_v(\d+)", str(base))
    return f"the champion v{match.group(1)}" if match else str(base)


def note_registry(sweep_dir: Path, line: str) -> None:
    """Put what the registry did (``Decision.line()``) in report.md, which is written before the decision."""
    path = Path(sweep_dir) / "report.md"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return
    lines = [f"{REGISTRY_LINE}{line.removeprefix('registry: ')}" if x.startswith(REGISTRY_LINE) else x for x in lines]
    path.write_text("\n".join(lines) + "\n")


def _tuned_line(r: dict[str, Any], params: str) -> str:
    """Which trial the tuned parameters are, and how they were chosen (the selection stage, when it ran)."""
    sel = r.get("selection")
    if not sel:
        return f"Tuned parameters (best trial, {_yen(r['best_value_tuning'])} yen/driver-day on the tuning window): " \
               f"{params}."
    rows = "; ".join(f"trial {f['trial']}: {_yen(f['tuning_value'])} tuning, {_yen(f['fresh_mean'])} fresh"
                     for f in sel["finalists"])
    return (f"Tuned parameters (trial {sel['chosen_trial']}, chosen by the selection stage: the "
            f"{len(sel['finalists'])} best trials on fresh seeds {', '.join(map(str, sel['seeds']))} of "
            f"`{sel['window']}`; {rows}): {params}.")


def _looks_lines(r: dict[str, Any]) -> list[str]:
    """The sequential decision's looks, one table row each (none for the fixed rule)."""
    seq = r.get("sequential") or {}
    if seq.get("rule") != "sequential":
        return []
    rows = [f"Sequential decision ({seq['method']}; docs/report.md): looks planned at {seq['planned_looks']} replications, "
            f"reject margin {seq['min_gain_pct']:g} %.", "", "| replications | " + " | ".join(
                f"{d} gain, 95 % repeated interval (%)" for d in DEMANDS) + " | outcome |",
            "|---:|" + "---:|" * len(DEMANDS) + "---|"]
    for look in seq["looks"]:
        cells = [f"{look['improvement_pct'][d]:+.2f} [{look['interval_pct'][d][0]:+.2f}, "
                 f"{look['interval_pct'][d][1]:+.2f}]" for d in DEMANDS]
        rows.append(f"| {look['replications']} | " + " | ".join(cells) + f" | {look['outcome'] or 'look again'} |")
    return [*rows, ""]


def _markdown(r: dict[str, Any], sweep: Sweep) -> str:
    """A human summary: the four patterns, the paired improvements and the decision."""
    test, tuning = r["windows"]["test"], r["windows"]["tuning"]
    pats = {(p["set"], p["demand"]): p for p in r["patterns"]}
    base_name = baseline_label(sweep.dir, r)
    rule = (f"**The promotion rule holds: the tuned parameters beat {base_name}**" if r["promote"] else
            f"**Undecided: keep {base_name} for now**" if r.get("decision") == "undecided" else
            f"**The promotion rule does not hold: keep {base_name}**")
    out = [
        f"# Champion/challenger report: {r['study']}",
        "",
        f"{rule} ({r['decision_reason']}).",
        "",
        *_looks_lines(r),
        f"{REGISTRY_LINE}not decided yet (the end of the sweep decides; `navitune champion history` shows the "
        "outcome). The report's rule is one condition of a promotion: the registry also needs the champion's "
        "evaluation scale and, for a plain sweep, an explicit `navitune champion decide` (docs/retune.md, "
        "\"Who promotes\").",
        "",
        f"Region `{r['region']}`; tuned on `{tuning.get('name')}` ({tuning.get('start')} .. {tuning.get('end')}, "
        f"seed {tuning.get('seed')}); evaluated on the held-out `{test['name']}` ({test['start']} .. {test['end']}), "
        f"{r['replications']} replications with common random numbers (seeds {test['seeds'][0]}.."
        f"{test['seeds'][-1]}, the same for both parameter sets).",
        "",
        "| parameters | demand | revenue / driver-day (yen) | 95 % CI (yen) | trips / shift | occupancy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    names = {"production": base_name.removeprefix("the "), "tuned": "tuned"}
    for s in SETS:
        for d in DEMANDS:
            p = pats[(s, d)]
            lo, hi = p["ci95_yen"]
            out.append(f"| {names.get(s, s)} (`{p['policy']}`) | {d} | {p['revenue_per_driver_day_yen']:,.0f} | "
                       f"{lo:,.0f} .. {hi:,.0f} | {p['trips_per_driver_shift']:.2f} | "
                       f"{100 * p['occupancy_distance']:.1f} % |")
    out += ["", f"| demand | tuned vs {base_name.removeprefix('the ')} | 95 % CI | per replication |",
            "|---|---:|---:|---|"]
    for d in DEMANDS:
        lo, hi = r["ci95_pct"][d]
        reps = ", ".join(f"{x:+.2f}" for x in r["paired_diff_pct"][d])
        out.append(f"| {d} | {r['improvement_pct'][d]:+.2f} % | {lo:+.2f} .. {hi:+.2f} % | {reps} |")
    params = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in r["best_params"].items())
    base = r["baseline"]
    out += [
        "",
        f"Interval: {r['ci_method']}. Rule: {r['promotion_rule']}.",
        "",
        _tuned_line(r, params),
        f"Parameters of {base_name}: {base['source']} ("
        + ", ".join(f"`{k}` = {_fmt(base['params'].get(k.removeprefix('policy.')))}" for k in r["best_params"])
        + ").",
        "",
        f"Candidate policy file: `{CANDIDATE}` — `cp {sweep.dir / CANDIDATE} conf/policy/{r['candidate']['name']}.yaml`"
        f" then `python -m experiment policy={r['candidate']['name']}`.",
    ]
    if r.get("study_problem"):
        out += ["", f"Study plots not drawn: {r['study_problem']}."]
    for png in r.get("plots", []):
        out += ["", f"![{png}]({png})"]
    return "\n".join(out) + "\n"
