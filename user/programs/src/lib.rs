//! Shared helpers for the Vigil user programs in src/bin/.
#![no_std]
