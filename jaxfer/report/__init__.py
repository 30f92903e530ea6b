"""Reports: ``jaxfer report``'s Markdown and HTML of run, sweep and DPTL directories."""
