"""One module per group of console pages; each holds an APIRouter named `router`."""
