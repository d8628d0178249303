"""Data recipes: scripts that build corpora for sdm. Not part of the library, which reads what
they build through its manifest alone (sdm.data)."""
