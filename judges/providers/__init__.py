"""One module per backend: its request body, its response parse, its `build(model, options)`."""
