"""The shapes Hangar speaks in: specs, their enums and checks, and what the API answers. Imports only hangar.errors."""
