"""slimedge: SLIM LSTM variants from PyTorch training to quantized ONNX/TFLite step graphs."""
__version__ = "0.1.0"
