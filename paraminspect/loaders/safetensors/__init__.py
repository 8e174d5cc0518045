"""safetensors files: the header reader and validator (header.py) and the graph built from it
(model.py)."""
