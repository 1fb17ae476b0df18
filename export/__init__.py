"""`llm-gateway export`: Hugging Face causal LM (hub id, folder or GGUF) -> validated ONNX model folder."""
