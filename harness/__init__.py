"""Tools that measure Loopline from outside: the benchmark and the soak/fault harness.

They start services as processes and drive them over HTTP; no service imports them.
"""
