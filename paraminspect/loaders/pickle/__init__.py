"""The restricted unpickler: every pickle-bearing format goes through it."""
