"""Each environment's logs, kept by the control plane: one file of lines per component, rotated by
size, bounded per environment and kept for a set number of days."""
