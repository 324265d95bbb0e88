"""Hydra configs shipped with slimsweep: composed by `slimsweep.sweeps.config`."""
