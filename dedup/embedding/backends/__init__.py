"""Fast CPU runtimes for the default model: ONNX Runtime int8 and OpenVINO."""
