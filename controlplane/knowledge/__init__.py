"""The knowledge base: the repository's docs/ read in the browser at /docs/."""
