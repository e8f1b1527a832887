"""The HTTP service: a FastAPI app over the predictor (the inference core never imports anything from here)."""
