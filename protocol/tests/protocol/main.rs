//! Integration tests of the protocol crate: public vectors and properties.

mod properties;
mod vectors;
