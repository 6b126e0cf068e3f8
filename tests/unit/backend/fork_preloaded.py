"""A module the test fork server imports before it forks."""
