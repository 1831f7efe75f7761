"""Backbone features computed once and reused: identities, the on-disk store, extraction,
and the frozen stages' boundary tensor for fine-tuning."""
