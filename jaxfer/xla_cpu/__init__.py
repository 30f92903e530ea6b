"""XLA-CPU kernels: convolutions and activations written for the CPU backend, selected by
``jaxfer.runtime.backend`` and nowhere else."""
