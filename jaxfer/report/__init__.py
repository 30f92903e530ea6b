"""Reports: plots of runs and sweeps, and ``jaxfer report``'s Markdown and HTML."""
