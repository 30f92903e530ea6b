"""Transfer: layer surgery, sweeps of (source, target, mode) cells, the area-ratio metrics and the published tables."""
