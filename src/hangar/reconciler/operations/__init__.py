"""One module per operation kind; each builds an `Operation` (hangar.reconciler.operation)
from the public steps (hangar.reconciler.steps) and imports no other operation."""
