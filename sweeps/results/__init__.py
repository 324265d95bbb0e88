"""The results model: the keys slimsweep writes, the rows every reader takes, MLflow tracking."""
