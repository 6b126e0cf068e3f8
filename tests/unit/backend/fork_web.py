"""A module the test fork server imports only when asked to warm the web server."""
