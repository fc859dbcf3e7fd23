"""Production signals: runs in, drift and regressions out, alerts routed to owners."""
