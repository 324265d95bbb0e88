"""The engine: the driver loop (Optuna ⇄ Ray), one trial, the quiet phase, the study, and
what a worker sets up and measures."""
