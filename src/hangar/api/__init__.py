"""HTTP edge: parse, call the domain with keyword arguments, serialize. Nothing else."""
