"""The runtime: a run's epochs, seed execution over devices and hosts, the memory budget, files,
run directories, the backend's code path, tracking."""
