"""llm-gateway: CPU-first LLM serving on ONNX Runtime."""
