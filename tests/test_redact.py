"""The one masking of secrets (``hydra_plugins.navitune_shared.redact``), form by form, and the places that
use it instead of their own copies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hydra_plugins.navitune_shared.redact import (holds_secret, is_reference, literal_secrets, redact,
                                                  without_userinfo)

S = "s3cr3t-c4n4ry"


@pytest.mark.parametrize("text, expected", [
    # a URL's password: the whole user info goes (the project's form since the first masker)
    (f"mysql+pymysql://navitune:{S}@127.0.0.1:3306/optuna", "mysql+pymysql://***@127.0.0.1:3306/optuna"),
    (f"storage=mysql+pymysql://navitune:{S}@db/optuna, then", "storage=mysql+pymysql://***@db/optuna, then"),
    # Hydra escaped the override: the escapes stay, the password goes
    (rf"tracking.uri=http\://navi\:{S}@127.0.0.1\:5055", r"tracking.uri=http\://***@127.0.0.1\:5055"),
    # a token in the user's place of an http(s) URL; a database user alone is no secret
    (f"https://{S}@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
    # query and fragment values named like secrets, whatever their position
    (f"mysql+pymysql://navitune@127.0.0.1:3306/optuna?password={S}",
     "mysql+pymysql://navitune@127.0.0.1:3306/optuna?password=***"),
    (f"'mysql://u@h/db?charset=utf8mb4&passwd={S};ssl=1'", "'mysql://u@h/db?charset=utf8mb4&passwd=***;ssl=1'"),
    (f"https://x.example/api?api_key={S}&b=2#access_token={S}",
     "https://x.example/api?api_key=***&b=2#access_token=***"),
    (rf"hydra.sweeper.storage=mysql\://u@h/db?pwd\={S}", r"hydra.sweeper.storage=mysql\://u@h/db?pwd\=***"),
    (f"http://h/x?Secret={S}&Credential={S}&sig={S}&page=2",
     "http://h/x?Secret=***&Credential=***&sig=***&page=2"),
    # a webhook's path, with or without a scheme
    (f"https://hooks.slack.com/services/T0/B0/{S}", "https://hooks.slack.com/***"),
    (f"unknown url type: 'hooks.slack.com/services/T0/B0/{S}'", "unknown url type: 'hooks.slack.com/***'"),
    (f"https://discord.com/api/webhooks/1/{S}", "https://discord.com/***"),
    (f"discord.com/api/webhooks/1/{S}", "discord.com/***"),
    (f"http://127.0.0.1:8080/webhook/{S}", "http://127.0.0.1:8080/***"),
    (f"https://acme.webhook.office.com/webhookb2/{S}", "https://acme.webhook.office.com/***"),
])
def test_each_form_is_masked(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert S not in redact(text)
    assert holds_secret(text)


@pytest.mark.parametrize("text", [
    # references name a secret's variable: they stay, so the config says where the secret comes from
    "mysql+pymysql://navitune:${oc.env:NAVITUNE_DB_PASSWORD}@127.0.0.1:3306/optuna",
    "mysql+pymysql://navitune@127.0.0.1:3306/optuna?password=${oc.env:NAVITUNE_DB_PASSWORD}",
    r"tracking.uri=http\://navi\:$\{oc.env\:MLFLOW_PASSWORD\}@127.0.0.1\:5055",
    # no secret in these
    "mysql+pymysql://navitune@127.0.0.1:3306/optuna",  # a database user alone
    "sqlite:////tmp/outputs/mlflow.db",
    "journal:///home/me/hooks/studies.journal",  # a folder named hooks in a file URL
    "see .git/hooks/pre-commit and x.git/hooks/pre-push",
    "http://127.0.0.1:5000/#/experiments/1/runs/abc",
    "https://example.com/search?q=token+bucket&page=2",
    "no URL at all: policy.gamma=0.9",
])
def test_what_is_not_a_secret_stays(text: str) -> None:
    assert redact(text) == text
    assert not holds_secret(text)


def test_known_values_are_masked_with_their_path() -> None:
    url = f"http://127.0.0.1:9/services/T/B/{S}"
    assert redact(f"posting to {url} failed", url) == "posting to *** failed"
    assert redact(f"HTTP Error 404 for /services/T/B/{S}", url) == "HTTP Error 404 for /***"


def test_every_url_of_a_longer_text_and_a_non_string() -> None:
    text = (f"a=mysql://u:{S}@h/db b=https://hooks.slack.com/services/T/B/{S} "
            f"c=http://h/?token={S}")
    assert redact(text) == "a=mysql://***@h/db b=https://hooks.slack.com/*** c=http://h/?token=***"
    assert redact({"uri": f"http://u:{S}@h"}) == "{'uri': 'http://***@h'}"


def test_literal_secrets_names_the_keys_and_leaves_references() -> None:
    config = {"tracking": {"uri": f"http://navi:{S}@h:5055"},
              "hydra": {"sweeper": {"storage": "mysql://u:${oc.env:PW}@h/db"},
                        "launcher": {"hosts": ["http://h", f"http://h?token={S}"]}}}
    assert list(literal_secrets(config)) == ["tracking.uri", "hydra.launcher.hosts[1]"]


def test_references_and_links() -> None:
    assert is_reference("${oc.env:X}") and is_reference("${oc.env:X}${oc.env:Y}")
    assert not is_reference("pre${oc.env:X}")
    assert without_userinfo(f"https://u:{S}@kfp.example:8443/p") == "https://kfp.example:8443/p"
    assert without_userinfo("https://kfp.example") == "https://kfp.example"


def test_the_shared_package_imports_nothing_heavy() -> None:
    """Hydra imports every module under hydra_plugins at each start: this package must stay cheap."""
    code = ("import sys, hydra_plugins.navitune_shared.redact; "
            "heavy = [m for m in ('hydra', 'omegaconf', 'optuna', 'mlflow', 'kfp', 'sqlalchemy') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_former_maskers_are_the_shared_one() -> None:
    """The places that had a hand-written masker of their own mask every form now."""
    from experiment.notify.slack import _mask as slack_mask
    from experiment.report import _mask as report_mask
    from experiment.tracking.common import mask
    from hydra_plugins.navitune_kfp.settings import fail
    from hydra_plugins.navitune_shared.storage import describe as _describe

    storage = f"mysql+pymysql://navitune@127.0.0.1:3306/optuna?password={S}"
    for shown in (mask(storage), report_mask(storage), _describe(storage), slack_mask(storage, ""),
                  str(fail("host", f"http://u:{S}@h", "a URL"))):
        assert S not in shown and "***" in shown


# ------------------------------------------------------------------------------------------ call sites
def test_kfp_refuses_launcher_env_from_the_environment_directly_or_through_a_key() -> None:
    """``hydra.launcher.env`` is compiled into the pipeline as plain text: a value from ``${oc.env:...}``
    (also through another key) is refused in one line that points to ``hydra.launcher.secrets``."""
    from omegaconf import OmegaConf

    from hydra_plugins.navitune_kfp.checks import check_env
    from hydra_plugins.navitune_kfp.settings import KFPConfigError

    def config(env: dict) -> object:
        return OmegaConf.create({"db": {"pw": "${oc.env:NAVITUNE_DB_PASSWORD}", "via": "${db.pw}"},
                                 "hydra": {"sweeper": {"study_name": "s"}, "launcher": {"env": env}}})

    for value in ("${oc.env:NAVITUNE_DB_PASSWORD}", "${db.via}", "x-${oc.env:HOME}"):
        with pytest.raises(KFPConfigError) as err:
            check_env(config({"FOO": value}))
        message = str(err.value)
        assert "hydra.launcher.env.FOO" in message and "hydra.launcher.secrets" in message
        assert len(message.splitlines()) == 1
    check_env(config({"PLAIN": "1", "STUDY": "${hydra.sweeper.study_name}"}))  # nothing from the environment


def test_slack_webhook_without_a_scheme_is_one_warning_naming_the_variable(monkeypatch, caplog) -> None:
    import logging

    from experiment.notify.slack import SlackNotifier

    monkeypatch.setenv("NAVITUNE_SLACK_WEBHOOK_URL", f"hooks.slack.com/services/T0/B0/{S}")
    notifier = SlackNotifier()
    with caplog.at_level(logging.WARNING):
        assert notifier.post("start", "hello") is False
        assert notifier.post("finish", "bye") is False
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "NAVITUNE_SLACK_WEBHOOK_URL" in message and S not in message and "hooks.slack.com" not in message


@pytest.mark.parametrize("args, key", [
    (["tracking=server", f"tracking.uri=http://navi:{S}@127.0.0.1:5055"], "tracking.uri"),
    (["-m", f"hydra.sweeper.storage='mysql+pymysql://navitune@127.0.0.1:3306/optuna?password={S}'"],
     "hydra.sweeper.storage"),
    (["-m", f"hydra.sweeper.storage=mysql+pymysql://navitune:{S}@127.0.0.1:3306/optuna"], "hydra.sweeper.storage"),
])
def test_the_cli_refuses_a_secret_in_clear_naming_the_key(args: list, key: str) -> None:
    """Hydra saves the command line and the config with every run: a secret must come by reference."""
    from experiment.preflight import preflight

    problem = preflight(args)
    assert problem is not None and f"invalid config {key}=" in problem and "${oc.env:VAR}" in problem
    assert S not in problem


def test_the_cli_takes_secrets_by_reference(monkeypatch) -> None:
    from experiment.preflight import preflight

    monkeypatch.setenv("PW", S)  # validation resolves the tracking URI
    assert preflight(["-m", "tracking=server", "tracking.uri=http://navi:${oc.env:PW}@127.0.0.1:5055",
                      "hydra.sweeper.storage='mysql+pymysql://navitune@127.0.0.1:3306/optuna?password=${oc.env:PW}'"
                      ]) is None
