//! Vigil user runtime: what every user program links against.
#![no_std]
