"""Text generation behind one interface: a local Hugging Face model or an OpenAI-compatible
endpoint. Used to write the rejected answers of preference datasets, and by evaluation and
serving, so every part of the platform generates text the same way."""
