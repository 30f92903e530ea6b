"""The training driver: one run's epochs over the seed mesh (``run``, ``seed_axis``, ``host_loop``), its
directory (``rundir``, ``files``), memory budget, plots, tracking and the multi-process supervisor."""
