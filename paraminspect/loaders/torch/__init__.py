"""PyTorch: zip and legacy pickles, optimizer state, TorchScript, torch.export."""
