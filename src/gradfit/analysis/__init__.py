"""Analysis of fits: the data behind a run, loss landscapes, step tables, races."""
