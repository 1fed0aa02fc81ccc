"""Dataset statistics, plots and the static HTML report."""
