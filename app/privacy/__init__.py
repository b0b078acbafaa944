"""A customer's privacy from the support desk: erasure, consent and how long we keep what (issue 20)."""
