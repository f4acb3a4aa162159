"""A training-like task: 10 steps, each reported to the trial; stops when the pruner says so."""

import hydra
import optuna
from omegaconf import DictConfig

from hydra_plugins.navitune_optuna.reporting import current_trial


@hydra.main(config_path=".", config_name="config")
def train(cfg: DictConfig) -> float:
    trial = current_trial()
    assert trial is not None, "not launched by optuna_async"
    loss = 0.0
    for step in range(cfg.steps):
        loss = cfg.x**2 + 1.0 / (step + 1)  # bad x: bad from the first step on
        if trial.report(step, loss):
            raise optuna.TrialPruned(f"pruned at step {step}")
    return loss


if __name__ == "__main__":
    train()
