"""A task that completes but returns what ``returns`` says: number | text | pair | not_a_number | none."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config")
def bad_return(cfg: DictConfig) -> object:
    value = cfg.x**2 + cfg.y**2
    return {"number": value, "text": "foo", "pair": (value, value), "not_a_number": float("nan"), "none": None}[cfg.returns]


if __name__ == "__main__":
    bad_return()
