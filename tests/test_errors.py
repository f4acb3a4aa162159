"""The one-line error helpers every module uses (hydra_plugins.navitune_shared.errors)."""

from __future__ import annotations

import pytest

from hydra_plugins.navitune_shared.errors import error_line, invalid, invalid_text, message_line


class Boom(Exception):
    pass


def test_invalid_returns_the_callers_exception_with_one_masked_line() -> None:
    err = invalid(Boom, "navitune", "config tracking.uri", "ftp://user:hunter2@host:21", "http(s)://host[:port]")
    assert type(err) is Boom  # returned, not raised: the caller raises it
    assert str(err) == "navitune: invalid config tracking.uri='ftp://***@host:21'; allowed: http(s)://host[:port]"
    assert "hunter2" not in str(err)
    assert invalid_text("kfp", "hydra.launcher.n_jobs", 0, "a whole number > 0") == \
        "kfp: invalid hydra.launcher.n_jobs=0; allowed: a whole number > 0"
    assert str(invalid(ValueError, None, "config proxy.port", [1], "a port")) == \
        "invalid config proxy.port=[1]; allowed: a port"


def test_the_helpers_of_config_sweeper_and_launchers_share_the_line() -> None:
    """Each module's helper only binds its exception type and prefix: same shape, all returned."""
    from experiment.config import ConfigError, _invalid as config_invalid
    from hydra_plugins.navitune_kfp.settings import fail as kfp_fail
    from hydra_plugins.navitune_optuna.validation import SweeperConfigError, invalid_setting as sweeper_invalid

    assert isinstance(config_invalid("policy.gamma", 2, "0 <= gamma < 1"), ConfigError)
    assert str(config_invalid("policy.gamma", 2, "0 <= gamma < 1")) == \
        "navitune: invalid config policy.gamma=2; allowed: 0 <= gamma < 1"
    assert isinstance(sweeper_invalid("n_jobs", 0, "x"), SweeperConfigError)
    assert str(sweeper_invalid("n_jobs", 0, "x")) == "optuna_async: invalid hydra.sweeper.n_jobs=0; allowed: x"
    assert str(kfp_fail("host", "http://a:pw@h", "the KFP API URL")) == \
        "kfp: invalid hydra.launcher.host='http://***@h'; allowed: the KFP API URL"


@pytest.mark.parametrize("message, line", [
    ("first\nsecond", "first"),
    ("  \n", ""),
    ("connect to mysql://navitune:s3cret-password@db:3306/optuna failed", "connect to mysql://***@db:3306/optuna failed"),
])
def test_message_and_error_lines(message: str, line: str) -> None:
    err = Boom(message)
    assert message_line(err) == line
    assert error_line(err) == (f"Boom: {line}" if line else "Boom")


def test_a_secret_is_masked_before_the_line_is_cut() -> None:
    """Cut first, a URL could lose its '@' and show the start of the password."""
    err = Boom("mysql://navitune:s3cret-password@db/optuna")
    assert "s3cret" not in message_line(err, limit=24)
