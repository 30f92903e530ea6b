"""XLA-CPU kernels: convolutions and activations written for the CPU backend, selected by
``jaxfer.backend`` and nowhere else."""
