//! Unit tests: one per rule.
