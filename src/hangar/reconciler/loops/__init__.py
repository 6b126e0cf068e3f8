"""The reconciler's loops: daemon threads that find work on a clock and hand it to the queues or the backend."""
