"""Route handlers only: validate, call the engine through app.generation, shape the answer."""
