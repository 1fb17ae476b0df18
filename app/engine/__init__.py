"""The decoding engine: ONNX Runtime with IO-bound KV cache and continuous batching. No web types here."""
