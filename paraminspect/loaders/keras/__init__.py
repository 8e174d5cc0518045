"""Keras: .keras archives and every .h5 generation, read as data."""
