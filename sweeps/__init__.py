"""The engine: CLI, config, search space → Optuna, driver (Optuna ⇄ Ray), trial, Pareto front."""
