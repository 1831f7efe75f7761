"""Backbone features computed once and reused: the featurizer (the one place features are
computed), its engines, the on-disk store, identities and the reuse verdict."""
