"""ONNX: the protobuf wire walker, the model graph, onnxruntime-training checkpoints."""
