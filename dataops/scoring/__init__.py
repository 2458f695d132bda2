"""Model scoring: batch inference over image URIs, embeddings and uncertainty scores."""
