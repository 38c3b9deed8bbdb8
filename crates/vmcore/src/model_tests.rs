//! Property tests against a model.
