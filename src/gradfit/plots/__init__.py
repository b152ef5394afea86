"""Pictures of fits: the only package that imports matplotlib."""
