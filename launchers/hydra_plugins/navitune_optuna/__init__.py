"""navitune's asynchronous Optuna sweeper for Hydra (``hydra/sweeper=optuna_async``)."""
