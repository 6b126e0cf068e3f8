"""Backends run environments' components. `local` runs them as supervised processes."""
