"""Simulated clients of the service: the scripted crowd of mini-program users (clients.simulate) and `make demo`."""
