"""Recognising digits in people's own images.

Modules (import them directly; this package imports nothing heavy):
  decode       bytes / path / PIL / array -> PIL image, with size limits and one-line errors
  preprocess   image -> MNIST-style 28x28, one pure function per step
  segment      a line of handwritten digits -> one 28x28 per digit, left to right
  recognizer   Recognizer, Prediction, Reading: the API the CLI and the HTTP server use
  onnx_export  torch -> ONNX with metadata and a parity check; the ONNX Runtime backend
"""
